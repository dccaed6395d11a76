"""Rate limits over real Redis: per API key on ingest (Django views and the ASGI fast path)
and the API, per IP on signed webhooks, the Stripe webhook, invitations and failed key
checks, allauth's login and signup limits, and failing open when Redis is down.

The buckets read `apps.core.ratelimit.now`, which the `clock` fixture replaces, so a
refill is a step of the clock, not a sleep."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from apps.audit.models import AuditEvent
from apps.billing.models import Subscription
from apps.billing.plans import plan_get
from apps.core import ratelimit
from apps.core.ratelimit import Limit
from apps.core.redis_cache import redis_client
from apps.keys.models import ApiKey
from tests.factories import ApiKeyFactory, MembershipFactory, UserFactory, WebhookEndpointFactory
from tests.integration.ingest.helpers import encode, post
from tests.integration.ingest.test_webhooks import deliver, signed

pytestmark = pytest.mark.django_db

KEY_REFUSAL = {
    "error": {
        "code": "rate_limited",
        "message": "This key is limited to 2 requests per second with a burst of 3; retry in 1 s.",
        "details": {"limit": "key", "rate_per_second": 2, "burst": 3, "retry_after": 1},
    }
}


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The limiter's clock; move it with `clock[0] += seconds`."""
    moment = [1_800_000_000.0]
    monkeypatch.setattr(ratelimit, "now", lambda: moment[0])
    return moment


@pytest.fixture
def limited(project):
    """A key of `project` limited to 2 requests a second with a burst of 3."""
    return ApiKeyFactory(project=project, rate_limit_per_second=2, rate_limit_burst=3)


def _span() -> dict:
    return {"id": f"rl-{uuid.uuid4().hex}"}


def _rate_headers(response) -> tuple[str, str, str]:
    return (
        response["X-RateLimit-Limit"],
        response["X-RateLimit-Remaining"],
        response["X-RateLimit-Reset"],
    )


def _fail_open_count(limit: str) -> float:
    return REGISTRY.get_sample_value("untrace_rate_limit_fail_open_total", {"limit": limit}) or 0.0


# --- the bucket itself ----------------------------------------------------------------


def test_bucket_allows_the_burst_then_refills_at_the_rate():
    limit = Limit(rate=2.0, burst=3)
    bucket = f"unit-{uuid.uuid4().hex}"
    at = 1_800_000_000.0
    taken = [ratelimit.take("test", bucket, limit, at=at) for _ in range(4)]
    assert [(d.allowed, d.remaining, d.reset, d.retry_after) for d in taken] == [
        (True, 2, 1, 0),
        (True, 1, 1, 0),
        (True, 0, 2, 0),
        (False, 0, 2, 1),
    ]
    assert ratelimit.take("test", bucket, limit, at=at + 0.25).allowed is False  # half a token
    assert ratelimit.take("test", bucket, limit, at=at + 0.5).allowed is True  # one token
    full = ratelimit.take("test", bucket, limit, at=at + 60)  # never more than the burst
    assert (full.allowed, full.remaining) == (True, 2)


def test_a_clock_behind_the_last_writer_gets_no_refill():
    limit = Limit(rate=1.0, burst=1)
    bucket = f"unit-{uuid.uuid4().hex}"
    assert ratelimit.take("test", bucket, limit, at=1000.0).allowed is True
    behind = ratelimit.take("test", bucket, limit, at=990.0)
    assert (behind.allowed, behind.remaining, behind.retry_after) == (False, 0, 1)
    assert ratelimit.take("test", bucket, limit, at=1001.0).allowed is True


def test_the_bucket_expires_once_it_would_be_full():
    bucket = f"unit-{uuid.uuid4().hex}"
    ratelimit.take("test", bucket, Limit(rate=2.0, burst=3), at=1_800_000_000.0)
    ttl_ms = redis_client().pttl(f"{ratelimit.KEY_PREFIX}test:{bucket}")
    assert 0 < ttl_ms <= 500 + 1000


def test_the_async_take_shares_the_bucket():
    limit = Limit(rate=1.0, burst=2)
    bucket = f"unit-{uuid.uuid4().hex}"
    assert ratelimit.take("test", bucket, limit, at=5000.0).remaining == 1

    async def go():
        return await ratelimit.take_async("test", bucket, limit, at=5000.0)

    with ThreadPoolExecutor(max_workers=1) as pool:
        decision = pool.submit(asyncio.run, go()).result()
    assert (decision.allowed, decision.remaining) == (True, 0)


# --- per key: ingest through Django ---------------------------------------------------


def test_key_gets_its_burst_then_429_then_the_refill(client, limited, clock):
    accepted = [post(client, "/v1/traces", _span(), limited.secret) for _ in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    assert [_rate_headers(r) for r in accepted] == [("3", "2", "1"), ("3", "1", "1"), ("3", "0", "2")]
    assert all("Retry-After" not in r for r in accepted)

    refused = post(client, "/v1/traces", _span(), limited.secret)
    assert refused.status_code == 429
    assert refused.json() == KEY_REFUSAL
    assert refused["Retry-After"] == "1"
    assert _rate_headers(refused) == ("3", "0", "2")

    clock[0] += 0.5  # one token back
    again = post(client, "/v1/traces", _span(), limited.secret)
    assert again.status_code == 202
    assert _rate_headers(again) == ("3", "0", "2")
    assert post(client, "/v1/traces", _span(), limited.secret).status_code == 429

    clock[0] += 10  # full again, never more than the burst
    full = post(client, "/v1/traces/batch", {"traces": [_span()]}, limited.secret)
    assert full.status_code == 202
    assert _rate_headers(full) == ("3", "2", "1")


def test_every_ingest_endpoint_counts_against_the_same_key(client, limited, clock):
    assert post(client, "/v1/traces", _span(), limited.secret).status_code == 202
    assert post(client, "/v1/traces/batch", {"traces": [_span()]}, limited.secret).status_code == 202
    otlp = client.post(
        "/otlp/v1/traces", b"{}", content_type="application/json", HTTP_X_UNTRACE_KEY=limited.secret
    )
    assert otlp.status_code == 200
    assert otlp["X-RateLimit-Remaining"] == "0"
    refused = client.post(
        "/otlp/v1/traces", b"{}", content_type="application/json", HTTP_X_UNTRACE_KEY=limited.secret
    )
    assert refused.status_code == 429
    assert refused.json() == KEY_REFUSAL


def test_an_invalid_body_still_carries_the_headers(client, limited, clock):
    response = post(client, "/v1/traces", b"{not json", limited.secret)
    assert response.status_code == 400
    assert _rate_headers(response) == ("3", "2", "1")


def test_the_plan_limit_applies_and_a_key_limit_overrides_it(client, project, clock):
    Subscription.objects.create(organization=project.organization, plan=plan_get("starter"))
    plain = ApiKeyFactory(project=project)
    own = ApiKeyFactory(project=project, rate_limit_per_second=2, rate_limit_burst=3)
    greedy = ApiKeyFactory(project=project, rate_limit_per_second=10_000, rate_limit_burst=20_000)
    assert _rate_headers(post(client, "/v1/traces", _span(), plain.secret)) == ("100", "99", "1")
    assert _rate_headers(post(client, "/v1/traces", _span(), own.secret)) == ("3", "2", "1")
    # A key's own limit never raises its plan's: the starter plan's 50/s, burst 100 apply.
    assert _rate_headers(post(client, "/v1/traces", _span(), greedy.secret)) == ("100", "99", "1")


def test_the_default_plan_applies_to_an_organization_without_a_billing_row(client, project, settings, clock):
    settings.UNTRACE_DEFAULT_PLAN = "growth"
    key = ApiKeyFactory(project=project)
    assert not Subscription.objects.filter(organization=project.organization).exists()
    assert _rate_headers(post(client, "/v1/traces", _span(), key.secret)) == ("1000", "999", "1")


def test_an_unlimited_plan_sends_no_headers_and_touches_no_bucket(client, api_key, clock):
    response = post(client, "/v1/traces", _span(), api_key.secret)  # the test default: enterprise
    assert response.status_code == 202
    assert "X-RateLimit-Limit" not in response
    assert not list(redis_client().scan_iter(match=f"{ratelimit.KEY_PREFIX}key:{api_key.pk}"))


def test_limits_can_be_switched_off(client, limited, settings, clock):
    settings.UNTRACE_RATE_LIMITS_ENABLED = False
    responses = [post(client, "/v1/traces", _span(), limited.secret) for _ in range(5)]
    assert [r.status_code for r in responses] == [202] * 5
    assert "X-RateLimit-Limit" not in responses[-1]


def test_redis_down_lets_every_request_through(client, limited, settings, clock):
    before = _fail_open_count("key")
    working = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    redis_client.cache_clear()
    ratelimit.reset_state()
    try:
        responses = [post(client, "/v1/traces", _span(), limited.secret) for _ in range(5)]
    finally:
        settings.REDIS_URL = working
        redis_client.cache_clear()
        ratelimit.reset_state()
    assert [r.status_code for r in responses] == [202] * 5
    assert "X-RateLimit-Limit" not in responses[0]
    assert _fail_open_count("key") - before == 5


def test_redis_down_lets_the_proxys_async_check_through(settings):
    before = _fail_open_count("key")
    working = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    ratelimit.reset_state()

    async def go():
        return await ratelimit.take_async("key", "proxy-down", Limit(rate=1.0, burst=1))

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(asyncio.run, go()).result()
            paused = pool.submit(asyncio.run, go()).result()  # not asked again for a while
    finally:
        settings.REDIS_URL = working
        ratelimit.reset_state()
    assert (first, paused) == (None, None)
    assert _fail_open_count("key") - before == 2


# --- per key: the ASGI fast path --------------------------------------------------------


def _asgi(method: str, path: str, **kwargs) -> httpx.Response:
    from untrace.asgi import application

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.request(method, path, **kwargs)

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


@pytest.mark.django_db(transaction=True)
def test_fast_path_is_limited(limited, clock):
    headers = {"Content-Type": "application/json", "X-Untrace-Key": limited.secret}
    statuses = []
    for _ in range(3):
        response = _asgi("POST", "/v1/traces", content=orjson.dumps(_span()), headers=headers)
        statuses.append(response.status_code)
    assert statuses == [202, 202, 202]
    assert response.headers["x-ratelimit-remaining"] == "0"
    refused = _asgi("POST", "/v1/traces/batch", content=orjson.dumps({"traces": [_span()]}), headers=headers)
    assert refused.status_code == 429
    assert refused.json() == KEY_REFUSAL
    assert refused.headers["retry-after"] == "1"
    assert (refused.headers["x-ratelimit-limit"], refused.headers["x-ratelimit-reset"]) == ("3", "2")


# --- per key: the API -----------------------------------------------------------------------


def test_api_is_limited_per_key(limited, clock):
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_X_UNTRACE_KEY=limited.secret)
    responses = [api.get("/v1/keys") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [_rate_headers(r) for r in responses] == [("3", "2", "1"), ("3", "1", "1"), ("3", "0", "2")]
    refused = api.get("/v1/usage")
    assert refused.status_code == 429
    assert refused.json() == KEY_REFUSAL
    assert refused["Retry-After"] == "1"
    assert _rate_headers(refused) == ("3", "0", "2")
    clock[0] += 0.5
    assert api.get("/v1/keys").status_code == 200


# --- failed key checks per IP ----------------------------------------------------------------

AUTH_REFUSAL = {
    "error": {
        "code": "rate_limited",
        "message": "This address is limited to 3 requests per minute; retry in 20 s.",
        "details": {"limit": "auth_failures_ip", "rate_per_second": 0.05, "burst": 3, "retry_after": 20},
    }
}
BAD_KEY = "ut_" + "a" * 12 + "_" + "b" * 40


def test_bad_keys_from_one_address_get_429_after_the_limit(client, api_key, settings, clock):
    settings.UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP = "3/m"
    refused = [post(client, "/v1/traces", _span(), BAD_KEY) for _ in range(3)]
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert [r.json()["error"]["code"] for r in refused] == ["invalid_key"] * 3
    limited = post(client, "/v1/traces", _span(), BAD_KEY)
    assert limited.status_code == 429
    assert limited.json() == AUTH_REFUSAL
    assert limited["Retry-After"] == "20"
    # The API counts in the same bucket; a valid key from the same address still works.
    api_refused = client.get("/v1/keys", HTTP_X_UNTRACE_KEY=BAD_KEY)
    assert api_refused.status_code == 429
    assert api_refused.json() == AUTH_REFUSAL
    assert api_refused["Retry-After"] == "20"
    assert post(client, "/v1/traces", _span(), api_key.secret).status_code == 202
    assert client.get("/v1/keys", HTTP_X_UNTRACE_KEY=api_key.secret).status_code == 200
    # Another address has its own bucket.
    elsewhere = post(client, "/v1/traces", _span(), BAD_KEY, REMOTE_ADDR="198.51.100.20")
    assert elsewhere.status_code == 401


def test_missing_keys_are_not_counted_as_failures(client, settings, clock):
    settings.UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP = "1/m"
    responses = [post(client, "/v1/traces", _span(), None) for _ in range(3)]
    assert [r.json()["error"]["code"] for r in responses] == ["missing_key"] * 3


def test_failures_count_per_client_address_behind_a_trusted_proxy(client, settings, clock):
    settings.UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP = "1/m"
    settings.UNTRACE_TRUSTED_PROXIES = ["127.0.0.1"]
    first = post(client, "/v1/traces", _span(), BAD_KEY, HTTP_X_FORWARDED_FOR="203.0.113.1")
    other = post(client, "/v1/traces", _span(), BAD_KEY, HTTP_X_FORWARDED_FOR="203.0.113.2")
    again = post(client, "/v1/traces", _span(), BAD_KEY, HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert [first.status_code, other.status_code, again.status_code] == [401, 401, 429]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(client, settings, clock):
    settings.UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP = "1/m"
    first = post(client, "/v1/traces", _span(), BAD_KEY, HTTP_X_FORWARDED_FOR="203.0.113.1")
    spoofed = post(client, "/v1/traces", _span(), BAD_KEY, HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert [first.status_code, spoofed.status_code] == [401, 429]


# --- unauthenticated endpoints per IP ---------------------------------------------------------


def test_signed_webhooks_are_limited_per_address(client, project, settings, clock):
    settings.UNTRACE_RATE_LIMIT_WEBHOOK_PER_IP = "2/m"
    endpoint = WebhookEndpointFactory(project=project)
    bodies = [{"traces": [_span()]} for _ in range(3)]
    first = deliver(client, endpoint, bodies[0], signed(endpoint.secret, encode(bodies[0])))
    unsigned = deliver(client, endpoint, bodies[1], {})
    assert [first.status_code, unsigned.status_code] == [202, 401]  # every request counts
    assert _rate_headers(first) == ("2", "1", "30")
    refused = deliver(client, endpoint, bodies[2], signed(endpoint.secret, encode(bodies[2])))
    assert refused.status_code == 429
    assert refused.json() == {
        "error": {
            "code": "rate_limited",
            "message": "This address is limited to 2 requests per minute; retry in 30 s.",
            "details": {"limit": "webhook_ip", "rate_per_second": 0.033333, "burst": 2, "retry_after": 30},
        }
    }
    assert refused["Retry-After"] == "30"
    assert _rate_headers(refused) == ("2", "0", "60")
    clock[0] += 30
    body = {"traces": [_span()]}
    assert deliver(client, endpoint, body, signed(endpoint.secret, encode(body))).status_code == 202


def test_stripe_webhook_is_limited_per_address(client, settings, clock):
    settings.UNTRACE_RATE_LIMIT_STRIPE_WEBHOOK_PER_IP = "1/m"
    first = client.post("/billing/stripe/webhook", b"{}", content_type="application/json")
    assert first.status_code != 429
    refused = client.post("/billing/stripe/webhook", b"{}", content_type="application/json")
    assert refused.status_code == 429
    assert refused.json() == {
        "error": {
            "code": "rate_limited",
            "message": "This address is limited to 1 request per minute; retry in 60 s.",
            "details": {
                "limit": "stripe_webhook_ip",
                "rate_per_second": 0.016667,
                "burst": 1,
                "retry_after": 60,
            },
        }
    }
    assert refused["Retry-After"] == "60"


def test_invitation_accept_is_limited_per_address(client, settings, clock):
    settings.UNTRACE_RATE_LIMIT_INVITATION_PER_IP = "2/m"
    client.force_login(UserFactory())
    statuses = [client.post("/invitations/not-a-token/accept").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    refused = client.post("/invitations/not-a-token/accept")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert b"This address is limited to 2 requests per minute; retry in 30 s." in refused.content
    assert client.get("/invitations/not-a-token/accept").status_code == 200  # reading the page is free


# --- allauth ----------------------------------------------------------------------------------


def test_failed_logins_are_refused_then_answered_429(client):
    user = UserFactory(email="grace@example.com")
    MembershipFactory(user=user)
    wrong = {"login": "grace@example.com", "password": "not the password"}
    first = [client.post("/accounts/login/", wrong) for _ in range(5)]
    assert [r.status_code for r in first] == [200] * 5
    assert all(b"Too many failed login attempts" not in r.content for r in first)
    sixth = client.post("/accounts/login/", wrong)
    assert sixth.status_code == 200
    assert b"Too many failed login attempts" in sixth.content
    more = [client.post("/accounts/login/", wrong).status_code for _ in range(4)]
    assert more == [200] * 4  # ten login posts from this address within the minute
    eleventh = client.post("/accounts/login/", wrong)
    assert eleventh.status_code == 429
    right = client.post(
        "/accounts/login/", {"login": "grace@example.com", "password": "correct horse battery"}
    )
    assert right.status_code == 429  # the address is refused, whatever it sends


def test_signups_from_one_address_are_answered_429_past_the_limit(client):
    form = {"email": "not-an-email", "password1": "x", "password2": "y"}
    statuses = [client.post("/accounts/signup/", form).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]


def test_password_reset_requests_are_limited(client):
    statuses = [
        client.post("/accounts/password/reset/", {"email": f"who{i}@example.com"}).status_code
        for i in range(6)
    ]
    assert statuses[:5] == [302] * 5
    assert statuses[5] == 429


# --- the keys API --------------------------------------------------------------------------------


def _patch(api, key, body):
    return api.patch(f"/v1/keys/{key.pk}", json.dumps(body), content_type="application/json")


def test_patch_sets_and_clears_a_keys_limit(api, api_key, project, clock, client):
    target = ApiKeyFactory(project=project)
    response = _patch(api, target, {"rate_limit_per_second": 2, "rate_limit_burst": 3})
    assert response.status_code == 200, response.content
    assert (response.json()["rate_limit_per_second"], response.json()["rate_limit_burst"]) == (2, 3)
    target.refresh_from_db()
    assert (target.rate_limit_per_second, target.rate_limit_burst) == (2, 3)
    event = AuditEvent.objects.get(action="key.updated")
    assert event.details["changed"] == {"rate_limit_per_second": 2, "rate_limit_burst": 3}
    # This process uses the new limit at once.
    assert _rate_headers(post(client, "/v1/traces", _span(), target.secret)) == ("3", "2", "1")

    cleared = _patch(
        api, target, {"rate_limit_per_second": None, "rate_limit_burst": None, "name": "renamed"}
    )
    assert cleared.status_code == 200
    assert cleared.json()["rate_limit_per_second"] is None
    assert cleared.json()["name"] == "renamed"
    assert "X-RateLimit-Limit" not in post(client, "/v1/traces", _span(), target.secret)


def test_create_takes_a_limit_and_rotation_keeps_it(api):
    created = api.post(
        "/v1/keys", {"name": "slow", "scopes": ["ingest"], "rate_limit_per_second": 5}, format="json"
    )
    assert created.status_code == 201, created.content
    assert (created.json()["rate_limit_per_second"], created.json()["rate_limit_burst"]) == (5, None)
    rotated = api.post(f"/v1/keys/{created.json()['id']}/rotate", {}, format="json")
    assert rotated.status_code == 201
    assert ApiKey.objects.get(pk=rotated.json()["id"]).rate_limit_per_second == 5


def _invalid(field: str, message: str) -> dict:
    return {
        "error": {
            "code": "invalid_request",
            "message": f"{field}: {message}",
            "details": {"field": field, "errors": {field: [message]}},
        }
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"rate_limit_per_second": -1},
            _invalid("rate_limit_per_second", "Ensure this value is greater than or equal to 1."),
        ),
        (
            {"rate_limit_per_second": 0},
            _invalid("rate_limit_per_second", "Ensure this value is greater than or equal to 1."),
        ),
        ({"rate_limit_per_second": "abc"}, _invalid("rate_limit_per_second", "Must be an integer.")),
        ({"rate_limit_per_second": "10"}, _invalid("rate_limit_per_second", "Must be an integer.")),
        ({"rate_limit_per_second": 2.5}, _invalid("rate_limit_per_second", "Must be an integer.")),
        ({"rate_limit_per_second": True}, _invalid("rate_limit_per_second", "Must be an integer.")),
        (
            {"rate_limit_per_second": 10**9},
            _invalid("rate_limit_per_second", "Ensure this value is less than or equal to 100000."),
        ),
        (
            {"rate_limit_burst": 0},
            _invalid("rate_limit_burst", "Ensure this value is greater than or equal to 1."),
        ),
        ({"rate_limit_burst": "many"}, _invalid("rate_limit_burst", "Must be an integer.")),
    ],
)
def test_patch_refuses_a_bad_limit_naming_the_field(api, project, body, expected):
    target = ApiKeyFactory(project=project)
    response = _patch(api, target, body)
    assert response.status_code == 400
    assert response.json() == expected
    target.refresh_from_db()
    assert (target.rate_limit_per_second, target.rate_limit_burst) == (None, None)


def test_create_refuses_a_bad_limit_naming_the_field(api):
    response = api.post("/v1/keys", {"name": "x", "rate_limit_burst": -1}, format="json")
    assert response.status_code == 400
    assert response.json() == _invalid("rate_limit_burst", "Ensure this value is greater than or equal to 1.")


def test_patch_of_another_projects_key_is_404(api):
    other = ApiKeyFactory()
    response = _patch(api, other, {"rate_limit_per_second": 1})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    other.refresh_from_db()
    assert other.rate_limit_per_second is None


def test_patch_needs_the_write_scope(project):
    from rest_framework.test import APIClient

    reader = ApiKeyFactory(project=project, scopes=["read"])
    api = APIClient()
    api.credentials(HTTP_X_UNTRACE_KEY=reader.secret)
    response = _patch(api, reader, {"rate_limit_per_second": 1})
    assert response.status_code == 403


# --- the dashboard -----------------------------------------------------------------------------


def test_dashboard_creates_a_key_with_its_own_limit(client, project, owner):
    client.force_login(owner)
    form = {"name": "batch job", "scopes": ["ingest"], "rate_limit_per_second": "2", "rate_limit_burst": "3"}
    response = client.post(f"/projects/{project.pk}/keys", form)
    assert response.status_code == 200
    key = ApiKey.objects.get(project=project, name="batch job")
    assert (key.rate_limit_per_second, key.rate_limit_burst) == (2, 3)
    assert "2/s, burst 3" in response.content.decode()


def test_dashboard_refuses_a_bad_limit(client, project, owner):
    client.force_login(owner)
    form = {"name": "bad", "scopes": ["ingest"], "rate_limit_per_second": "0"}
    response = client.post(f"/projects/{project.pk}/keys", form)
    assert response.status_code == 200
    assert "Ensure this value is greater than or equal to 1." in response.content.decode()
    assert not ApiKey.objects.filter(project=project, name="bad").exists()


# --- configuration --------------------------------------------------------------------------------


def _production_settings(**env: str) -> list[str]:
    """Lines printed by production settings (the cache backend, allauth's login limits)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    base = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "UNTRACE_", "DJANGO_"))}
    code = (
        "from django.conf import settings; from allauth.account import app_settings as a; "
        "print(settings.CACHES['default']['BACKEND']); print(settings.CACHES['default'].get('LOCATION')); "
        "print(a.RATE_LIMITS['login']); print(a.RATE_LIMITS['login_failed']); print(a.RATE_LIMITS['signup'])"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "untrace.settings",
            "DEBUG": "false",
            "UNTRACE_SECRET_KEY": "k" * 60,
            "UNTRACE_ENCRYPTION_KEYS": "dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA=",
            "DATABASE_URL": "sqlite:///:memory:",
            "REDIS_URL": "redis://127.0.0.1:6379/9",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-5:]


def test_production_keeps_allauths_limits_in_redis():
    assert _production_settings() == [
        "django.core.cache.backends.redis.RedisCache",
        "redis://127.0.0.1:6379/9",
        "10/m/ip",
        "5/m/ip,5/5m/key",
        "10/m/ip",
    ]
    assert _production_settings(UNTRACE_CACHE_URL="locmem://")[:2] == [
        "django.core.cache.backends.locmem.LocMemCache",
        "None",
    ]


def test_make_run_without_redis_keeps_allauths_limits_in_the_process(tmp_path):
    from untrace.devstack import environment

    base = {"UNTRACE_VAR_DIR": str(tmp_path)}
    assert environment(base, redis_probe_url="redis://127.0.0.1:1/0")["UNTRACE_CACHE_URL"] == "locmem://"
    assert "UNTRACE_CACHE_URL" not in environment(base)  # the local Redis answers
    given = environment(
        {**base, "REDIS_URL": "redis://127.0.0.1:1/0"}, redis_probe_url="redis://127.0.0.1:1/0"
    )
    assert "UNTRACE_CACHE_URL" not in given  # an explicit REDIS_URL is never second-guessed


def test_a_refill_of_exactly_one_token_is_one_token_whatever_the_rate():
    for rate in (3.0, 7.0, 10 / 60, 100_000.0):
        limit = Limit(rate=rate, burst=1)
        bucket = f"unit-{uuid.uuid4().hex}"
        at = 1_800_000_000.123456
        assert ratelimit.take("test", bucket, limit, at=at).allowed is True
        for step in range(1, 20):
            assert ratelimit.take("test", bucket, limit, at=at + step / rate).allowed is True, (rate, step)
