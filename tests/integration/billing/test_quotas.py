"""Quota warnings at 80 % and 100 %, the starter plan's 429 past 110 %, paid plans that keep
accepting, and the destination limit."""

from __future__ import annotations

import pytest
from django.core import mail

from apps.billing import usage
from apps.billing.models import Subscription
from apps.destinations.models import Destination
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory, SubscriptionFactory
from tests.integration.ingest.helpers import error_of, post, span
from workers.tasks.billing import persist_usage

pytestmark = pytest.mark.django_db
BATCH = "/v1/traces/batch"


def ingest(client, key, n: int):
    return post(client, BATCH, {"traces": [span() for _ in range(n)]}, key)


@pytest.fixture
def owners(organization):
    return [MembershipFactory(organization=organization, role="owner").user for _ in range(2)]


def test_warnings_at_80_and_100_percent_are_mailed_to_owners_once(
    client, key, organization, small_starter, owners
):
    MembershipFactory(organization=organization, role="member")
    ingest(client, key, 7)
    persist_usage()
    assert mail.outbox == []

    ingest(client, key, 1)  # 8 of 10
    persist_usage()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == sorted(u.email for u in owners)
    assert "80%" in message.subject
    assert "8 of the 10 traces" in message.body
    assert "429" in message.body and "/v1/billing/checkout" in message.body
    billing = Subscription.objects.get(organization=organization)
    assert (billing.warned_month, billing.warned_percent) == (usage.month_start(), 80)

    ingest(client, key, 1)
    persist_usage()
    assert len(mail.outbox) == 1  # 90 %: nothing new

    ingest(client, key, 1)  # 10 of 10
    persist_usage()
    persist_usage()
    assert len(mail.outbox) == 2
    assert "100%" in mail.outbox[1].subject
    assert Subscription.objects.get(organization=organization).warned_percent == 100


def test_a_warning_of_last_month_does_not_silence_this_month(
    client, key, organization, small_starter, owners
):
    SubscriptionFactory(organization=organization, warned_month="2020-01-01", warned_percent=100)
    ingest(client, key, 9)
    persist_usage()
    assert [m.subject for m in mail.outbox] == [
        f"Untrace: {organization.name} used 80% of its monthly traces"
    ]


def test_starter_past_110_percent_gets_429_quota_exceeded(client, key, organization, small_starter):
    assert ingest(client, key, 11).status_code == 202  # 110 %: still accepted
    persist_usage()
    assert ingest(client, key, 1).status_code == 202
    persist_usage()  # 12 of 10: over 110 %

    error = error_of(ingest(client, key, 1), 429, "quota_exceeded")
    assert "12 traces" in error["message"] and "10 included in its starter plan" in error["message"]
    assert "POST /v1/billing/checkout" in error["message"]
    assert error["details"] == {
        "limit": "traces_per_month",
        "plan": "starter",
        "max": 10,
        "used": 12,
        "upgrade": "POST /v1/billing/checkout",
    }
    error_of(post(client, "/v1/traces", span(), key), 429, "quota_exceeded")
    error_of(post(client, "/otlp/v1/traces", {"resourceSpans": []}, key), 429, "quota_exceeded")
    assert client.get("/v1/usage", HTTP_X_UNTRACE_KEY=key).json()["ingest_paused"] is True

    # Another organization is not affected.
    other = ProjectFactory()
    from tests.factories import ApiKeyFactory

    assert ingest(client, ApiKeyFactory(project=other).secret, 1).status_code == 202


def test_a_paid_plan_keeps_accepting_past_its_limit(client, key, organization, owners):
    SubscriptionFactory(organization=organization, plan="growth", custom_monthly_traces=10)
    ingest(client, key, 15)
    persist_usage()
    assert ingest(client, key, 1).status_code == 202
    assert "100%" in mail.outbox[-1].subject
    assert "keeps accepting" in mail.outbox[-1].body


def test_moving_to_a_paid_plan_resumes_ingest(client, key, organization, small_starter):
    ingest(client, key, 12)
    persist_usage()
    error_of(ingest(client, key, 1), 429, "quota_exceeded")
    Subscription.objects.filter(organization=organization).update(plan_id=_plan_id("growth"))
    persist_usage()
    usage.forget_cache()
    assert ingest(client, key, 1).status_code == 202


def _plan_id(code: str) -> int:
    from apps.billing.models import Plan

    return Plan.objects.get(code=code).pk


def test_destination_limit_is_enforced_per_organization(api, organization):
    second_project = ProjectFactory(organization=organization)
    DestinationFactory(project=second_project)
    body = {
        "name": "d",
        "type": "webhook",
        "config": {"url": "http://127.0.0.1:9/h", "secret": "whsec_dGVzdHNlY3JldA=="},
    }
    assert api.post("/v1/destinations", body, format="json").status_code == 201
    error = error_of(api.post("/v1/destinations", {**body, "name": "e"}, format="json"), 403, "plan_limit")
    assert "Starter plan allows 2 destinations" in error["message"]
    assert error["details"] == {"limit": "destinations", "max": 2, "current": 2, "plan": "starter"}
    assert Destination.objects.filter(project__organization=organization).count() == 2
    # A taken name is still a conflict, not a plan limit.
    error_of(api.post("/v1/destinations", body, format="json"), 409, "conflict")


def test_scale_has_no_destination_limit(api, organization):
    SubscriptionFactory(organization=organization, plan="scale")
    body = {"type": "webhook", "config": {"url": "http://127.0.0.1:9/h", "secret": "whsec_dGVzdHNlY3JldA=="}}
    for n in range(6):
        assert api.post("/v1/destinations", {**body, "name": f"d{n}"}, format="json").status_code == 201
