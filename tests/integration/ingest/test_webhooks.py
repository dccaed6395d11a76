"""Signed-webhook ingest: /v1/webhook-endpoints CRUD and POST /v1/webhooks/{id} (Standard Webhooks)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from apps.ingest.models import WebhookEndpoint, WebhookMessage
from apps.traces.models import IngestBatch, Span
from tests.factories import ApiKeyFactory, WebhookEndpointFactory
from tests.integration.ingest.helpers import auth, encode, error_of, span

pytestmark = pytest.mark.django_db

ENDPOINT_FIELDS = {"id", "name", "enabled", "url", "last_received_at", "created_at", "updated_at"}


# --- CRUD ------------------------------------------------------------------------------


def _secret_is_well_formed(secret: str) -> None:
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_create_returns_the_secret_once(api, project):
    response = api.post("/v1/webhook-endpoints", {"name": "from vendor"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == ENDPOINT_FIELDS | {"secret"}
    _secret_is_well_formed(body["secret"])
    assert body["name"] == "from vendor"
    assert body["enabled"] is True
    assert body["url"] == f"/v1/webhooks/{body['id']}"
    assert body["last_received_at"] is None
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.project_id == project.pk
    assert endpoint.secret == body["secret"]
    assert body["secret"] not in endpoint.secret_encrypted  # encrypted at rest

    listed = api.get("/v1/webhook-endpoints").json()["results"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert set(listed[0]) == ENDPOINT_FIELDS
    retrieved = api.get(f"/v1/webhook-endpoints/{body['id']}")
    assert retrieved.status_code == 200
    assert set(retrieved.json()) == ENDPOINT_FIELDS
    assert body["secret"] not in api.get("/v1/webhook-endpoints").content.decode()


def test_create_disabled(api):
    body = api.post("/v1/webhook-endpoints", {"name": "off", "enabled": False}, format="json").json()
    assert body["enabled"] is False


def test_list_shows_only_the_projects_endpoints(api, project):
    mine = WebhookEndpointFactory(project=project)
    WebhookEndpointFactory()  # another tenant's
    assert [item["id"] for item in api.get("/v1/webhook-endpoints").json()["results"]] == [str(mine.pk)]


def test_update_name_and_enabled(api, project):
    endpoint = WebhookEndpointFactory(project=project)
    response = api.patch(
        f"/v1/webhook-endpoints/{endpoint.pk}", {"enabled": False, "name": "renamed"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert set(response.json()) == ENDPOINT_FIELDS
    assert (response.json()["name"], response.json()["enabled"]) == ("renamed", False)
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.enabled) == ("renamed", False)


def test_rotate_secret_returns_a_new_secret(api, project):
    endpoint = WebhookEndpointFactory(project=project)
    old = endpoint.secret
    response = api.post(f"/v1/webhook-endpoints/{endpoint.pk}/rotate-secret")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ENDPOINT_FIELDS | {"secret"}
    _secret_is_well_formed(body["secret"])
    assert body["secret"] != old
    endpoint.refresh_from_db()
    assert endpoint.secret == body["secret"]
    assert endpoint.previous_secret_expires_at > timezone.now() + timedelta(hours=23)


def test_delete(api, project):
    endpoint = WebhookEndpointFactory(project=project)
    assert api.delete(f"/v1/webhook-endpoints/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    error_of(api.get(f"/v1/webhook-endpoints/{endpoint.pk}"), 404, "not_found")


def test_another_tenants_endpoint_is_404(api):
    theirs = WebhookEndpointFactory()
    path = f"/v1/webhook-endpoints/{theirs.pk}"
    error_of(api.get(path), 404, "not_found")
    error_of(api.patch(path, {"enabled": False}, format="json"), 404, "not_found")
    error_of(api.post(f"{path}/rotate-secret"), 404, "not_found")
    error_of(api.delete(path), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.enabled is True
    assert theirs.previous_secret_encrypted == ""


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_malformed_id_is_400_naming_id(api, method):
    error = error_of(getattr(api, method)("/v1/webhook-endpoints/not-a-uuid"), 400, "invalid_request")
    assert error["details"] == {"field": "id"}
    assert error["message"] == "id: 'not-a-uuid' is not a valid UUID"
    error = error_of(api.post("/v1/webhook-endpoints/123/rotate-secret"), 400, "invalid_request")
    assert error["details"] == {"field": "id"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "name: This field is required."),
        ({"name": 7}, "name", "name: Must be a string."),
        ({"name": ""}, "name", "name: This field may not be blank."),
        ({"name": "x" * 201}, "name", "name: Ensure this field has no more than 200 characters."),
        ({"name": "x", "enabled": "maybe"}, "enabled", "enabled: Must be a valid boolean."),
    ],
)
def test_bad_create_bodies_are_400_naming_the_field(api, body, field, message):
    error = error_of(api.post("/v1/webhook-endpoints", body, format="json"), 400, "invalid_request")
    assert error["details"]["field"] == field
    assert error["message"] == message
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"), [({"name": ""}, "name"), ({"enabled": None}, "enabled"), ({"name": ["a"]}, "name")]
)
def test_bad_update_bodies_are_400_naming_the_field(api, project, body, field):
    endpoint = WebhookEndpointFactory(project=project)
    response = api.patch(f"/v1/webhook-endpoints/{endpoint.pk}", body, format="json")
    assert error_of(response, 400, "invalid_request")["details"]["field"] == field


def test_non_object_and_invalid_json_bodies(api):
    error_of(api.post("/v1/webhook-endpoints", [1], format="json"), 400, "invalid_request")
    response = api.generic("POST", "/v1/webhook-endpoints", b'{"name": ', content_type="application/json")
    error_of(response, 400, "invalid_json")


def test_scopes(project, client):
    endpoint = WebhookEndpointFactory(project=project)
    ingest_only = ApiKeyFactory(project=project, scopes=["ingest"]).secret
    reader = ApiKeyFactory(project=project, scopes=["read"]).secret
    error_of(client.get("/v1/webhook-endpoints", **auth(ingest_only)), 403, "missing_scope")
    assert client.get("/v1/webhook-endpoints", **auth(reader)).status_code == 200
    for response in (
        client.post("/v1/webhook-endpoints", {"name": "x"}, content_type="application/json", **auth(reader)),
        client.post(f"/v1/webhook-endpoints/{endpoint.pk}/rotate-secret", **auth(reader)),
        client.delete(f"/v1/webhook-endpoints/{endpoint.pk}", **auth(reader)),
    ):
        error = error_of(response, 403, "missing_scope")
        assert error["message"] == "This API key lacks the 'write' scope."
    error_of(client.get("/v1/webhook-endpoints"), 401, "unauthenticated")


# --- signed ingest ---------------------------------------------------------------------


def signed(
    secret: str, body: bytes, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, as the Django test client takes them."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def deliver(client, endpoint, body, headers, **extra):
    return client.post(
        f"/v1/webhooks/{endpoint.pk}", encode(body), content_type="application/json", **headers, **extra
    )


@pytest.fixture
def endpoint(project):
    return WebhookEndpointFactory(project=project)


def test_signed_message_is_accepted_and_stored(
    client, endpoint, project, routed, django_capture_on_commit_callbacks
):
    body = encode({"traces": [span(id="wh-1", model="gpt-4o-mini"), span(id="wh-2", parent_id="wh-1")]})
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, endpoint, body, signed(endpoint.secret, body))

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": ["wh-1", "wh-2"], "errors": []}
    assert set(Span.objects.filter(project=project).values_list("span_id", flat=True)) == {"wh-1", "wh-2"}
    batch = IngestBatch.objects.get()
    assert (batch.source, batch.span_count, batch.project_id) == ("webhook", 2, project.pk)
    assert routed == [batch.pk]
    endpoint.refresh_from_db()
    assert endpoint.last_received_at is not None


def test_partly_invalid_message_is_207(client, endpoint):
    body = encode({"traces": [span(id="good"), {"id": 1}]})
    response = deliver(client, endpoint, body, signed(endpoint.secret, body))
    assert response.status_code == 207
    assert response.json() == {
        "accepted": ["good"],
        "errors": [{"index": 1, "message": "Expected `str`, got `int`", "field": "traces[1].id"}],
    }


def test_no_api_key_is_needed_and_one_is_not_enough(client, endpoint, api_key):
    body = encode({"traces": [span()]})
    error = error_of(deliver(client, endpoint, body, {}, **auth(api_key.secret)), 401, "invalid_signature")
    assert error["message"] == "Missing header webhook-id."
    assert not Span.objects.exists()


def test_wrong_secret_is_401(client, endpoint):
    body = encode({"traces": [span()]})
    other = WebhookEndpointFactory().secret
    error = error_of(deliver(client, endpoint, body, signed(other, body)), 401, "invalid_signature")
    assert error["message"] == "No matching signature found."
    assert not Span.objects.exists()


def test_tampered_body_is_401(client, endpoint):
    body = encode({"traces": [span(id="original")]})
    headers = signed(endpoint.secret, body)
    tampered = body.replace(b"original", b"tampered")
    error_of(deliver(client, endpoint, tampered, headers), 401, "invalid_signature")
    assert not Span.objects.exists()


@pytest.mark.parametrize("missing", ["HTTP_WEBHOOK_ID", "HTTP_WEBHOOK_TIMESTAMP", "HTTP_WEBHOOK_SIGNATURE"])
def test_missing_header_is_401(client, endpoint, missing):
    body = encode({"traces": [span()]})
    headers = signed(endpoint.secret, body)
    del headers[missing]
    error = error_of(deliver(client, endpoint, body, headers), 401, "invalid_signature")
    name = missing.removeprefix("HTTP_").lower().replace("_", "-")
    assert error["message"] == f"Missing header {name}."


@pytest.mark.parametrize(
    ("age", "message"),
    [
        (timedelta(minutes=6), "Message timestamp too old."),
        (-timedelta(minutes=6), "Message timestamp too new."),
    ],
)
def test_stale_or_future_timestamp_is_401(client, endpoint, age, message):
    body = encode({"traces": [span()]})
    headers = signed(endpoint.secret, body, at=datetime.now(UTC) - age)
    error = error_of(deliver(client, endpoint, body, headers), 401, "invalid_signature")
    assert error["message"] == message
    assert not Span.objects.exists()


def test_timestamp_within_the_tolerance_is_accepted(client, endpoint):
    body = encode({"traces": [span()]})
    headers = signed(endpoint.secret, body, at=datetime.now(UTC) - timedelta(minutes=4))
    assert deliver(client, endpoint, body, headers).status_code == 202


def test_replayed_message_id_is_ignored(client, endpoint):
    body = encode({"traces": [span(id="once")]})
    headers = signed(endpoint.secret, body, msg_id="msg_replay")
    assert deliver(client, endpoint, body, headers).status_code == 202

    again = deliver(client, endpoint, body, headers)
    assert again.status_code == 202
    assert again.json() == {"accepted": [], "errors": [], "replayed": True}
    other_body = encode({"traces": [span(id="sneaked-in")]})
    resigned = deliver(client, endpoint, other_body, signed(endpoint.secret, other_body, msg_id="msg_replay"))
    assert resigned.json()["replayed"] is True
    assert list(Span.objects.values_list("span_id", flat=True)) == ["once"]
    assert IngestBatch.objects.count() == 1
    assert WebhookMessage.objects.count() == 1


def test_a_rejected_message_can_be_retried_under_the_same_id(client, endpoint):
    bad = encode({"traces": [{"id": 1}]})
    assert deliver(client, endpoint, bad, signed(endpoint.secret, bad, msg_id="msg_retry")).status_code == 400
    good = encode({"traces": [span(id="fixed")]})
    response = deliver(client, endpoint, good, signed(endpoint.secret, good, msg_id="msg_retry"))
    assert response.status_code == 202
    assert response.json() == {"accepted": ["fixed"], "errors": []}


def test_the_same_message_id_on_two_endpoints_is_two_messages(client, endpoint, project):
    second = WebhookEndpointFactory(project=project)
    body = encode({"traces": [span(id="first")]})
    assert deliver(client, endpoint, body, signed(endpoint.secret, body, msg_id="msg_1")).status_code == 202
    body2 = encode({"traces": [span(id="second")]})
    response = deliver(client, second, body2, signed(second.secret, body2, msg_id="msg_1"))
    assert response.json() == {"accepted": ["second"], "errors": []}


def test_after_rotation_old_and_new_secret_verify_until_the_grace_ends(api, client, endpoint):
    old = endpoint.secret
    new = api.post(f"/v1/webhook-endpoints/{endpoint.pk}/rotate-secret").json()["secret"]

    for secret in (old, new):
        body = encode({"traces": [span()]})
        assert deliver(client, endpoint, body, signed(secret, body)).status_code == 202

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    body = encode({"traces": [span()]})
    error_of(deliver(client, endpoint, body, signed(old, body)), 401, "invalid_signature")
    assert deliver(client, endpoint, body, signed(new, body)).status_code == 202


def test_disabled_endpoint_is_404(client, project):
    endpoint = WebhookEndpointFactory(project=project, enabled=False)
    body = encode({"traces": [span()]})
    error = error_of(deliver(client, endpoint, body, signed(endpoint.secret, body)), 404, "not_found")
    assert error["message"] == "No such webhook endpoint."
    assert not Span.objects.exists()


@pytest.mark.parametrize("endpoint_id", [str(uuid.uuid4()), "not-a-uuid", "0"])
def test_unknown_endpoint_is_404(client, db, endpoint_id):
    body = encode({"traces": [span()]})
    response = client.post(
        f"/v1/webhooks/{endpoint_id}",
        body,
        content_type="application/json",
        **signed("whsec_" + "A" * 44, body),
    )
    error = error_of(response, 404, "not_found")
    assert error["message"] == "No such webhook endpoint."


@pytest.mark.parametrize(
    "signature",
    ["v1", "v1,", "v1,not base64!!", "v1,a,b", "v1,AAAA", "v2,AAAA", ",", "v1,=", "garbage with spaces"],
)
def test_malformed_signature_header_is_401(client, endpoint, signature):
    body = encode({"traces": [span()]})
    headers = {**signed(endpoint.secret, body), "HTTP_WEBHOOK_SIGNATURE": signature}
    error_of(deliver(client, endpoint, body, headers), 401, "invalid_signature")
    assert not Span.objects.exists()


@pytest.mark.parametrize(
    "timestamp", ["yesterday", "nan", "inf", "1e400", "-1", "99999999999999999999", "١٢"]
)
def test_malformed_timestamp_is_401(client, endpoint, timestamp):
    body = encode({"traces": [span()]})
    headers = {**signed(endpoint.secret, body), "HTTP_WEBHOOK_TIMESTAMP": timestamp}
    error_of(deliver(client, endpoint, body, headers), 401, "invalid_signature")


def test_one_valid_signature_among_several_is_enough(client, endpoint):
    body = encode({"traces": [span()]})
    headers = signed(endpoint.secret, body)
    headers["HTTP_WEBHOOK_SIGNATURE"] = (
        f"v1,{base64.b64encode(b'x' * 32).decode()} {headers['HTTP_WEBHOOK_SIGNATURE']}"
    )
    assert deliver(client, endpoint, body, headers).status_code == 202


def _hand_signed(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_non_utf8_body_is_refused_not_500(client, endpoint):
    body = b'{"traces": [{"id": "\xff\xfe"}]}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = {
        "HTTP_WEBHOOK_ID": "msg_bytes",
        "HTTP_WEBHOOK_TIMESTAMP": str(timestamp),
        "HTTP_WEBHOOK_SIGNATURE": _hand_signed(endpoint.secret, "msg_bytes", timestamp, body),
    }
    error = error_of(deliver(client, endpoint, body, headers), 401, "invalid_signature")
    assert error["message"] == "Malformed webhook-signature header or body."
    assert not Span.objects.exists()


def test_gzip_body_is_verified_after_decompression(client, endpoint):
    body = encode({"traces": [span(id="zipped")]})
    response = client.post(
        f"/v1/webhooks/{endpoint.pk}",
        gzip.compress(body),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
        **signed(endpoint.secret, body),
    )
    assert response.status_code == 202, response.content
    assert Span.objects.filter(span_id="zipped").exists()


def test_non_json_content_type_is_415(client, endpoint):
    body = encode({"traces": [span()]})
    response = client.post(
        f"/v1/webhooks/{endpoint.pk}", body, content_type="text/plain", **signed(endpoint.secret, body)
    )
    error_of(response, 415, "unsupported_media_type")


def test_invalid_json_with_a_valid_signature_is_400(client, endpoint):
    body = b'{"traces": ['
    error = error_of(deliver(client, endpoint, body, signed(endpoint.secret, body)), 400, "invalid_json")
    assert error["details"] == {"position": 12, "line": 1, "column": 13}


@pytest.mark.parametrize(
    ("msg_id", "status"), [("x" * 300, 202), ("msg with spaces", 202), ("msg_\x00nul", 400)]
)
def test_odd_message_ids(client, endpoint, msg_id, status):
    body = encode({"traces": [span()]})
    response = deliver(client, endpoint, body, signed(endpoint.secret, body, msg_id=msg_id))
    assert response.status_code == status, response.content
    if status == 400:
        error = error_of(response, 400, "invalid_request")
        assert error["message"] == "Header webhook-id may not contain NUL."
        assert not Span.objects.exists()


def test_a_span_the_store_cannot_hold_rejects_only_itself(client, endpoint):
    body = encode({"traces": [span(id="kept"), span(metadata={"big": 2**70})]})
    response = deliver(client, endpoint, body, signed(endpoint.secret, body, msg_id="msg_big"))
    assert response.status_code == 207, response.content
    assert response.json() == {
        "accepted": ["kept"],
        "errors": [
            {
                "index": 1,
                "message": "the store refused this span: a value is out of range",
                "field": "traces[1]",
            }
        ],
    }
    assert list(Span.objects.values_list("span_id", flat=True)) == ["kept"]
    assert WebhookMessage.objects.filter(message_id="msg_big").exists()
