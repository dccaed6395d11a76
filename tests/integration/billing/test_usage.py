"""Usage counting through real ingest requests and Redis, its persistence and reconciliation,
and GET /v1/usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from apps.billing import usage
from apps.billing.models import Subscription, UsageCounter
from apps.billing.services import usage_reconcile
from apps.traces.models import Span
from tests.factories import ApiKeyFactory, DestinationFactory, ProjectFactory, SubscriptionFactory
from tests.integration.ingest.helpers import auth, error_of, post, span
from workers.tasks.billing import persist_usage, reconcile_usage

pytestmark = pytest.mark.django_db


def counted(organization) -> int:
    return usage.usage_counted(usage.month_start()).get(str(organization.pk), 0)


def test_accepted_spans_are_counted_per_organization(client, key, organization):
    assert post(client, "/v1/traces", span(), key).status_code == 202
    assert post(client, "/v1/traces/batch", {"traces": [span(), span(), span()]}, key).status_code == 202
    assert counted(organization) == 4


def test_a_resent_span_and_a_rejected_one_are_not_counted(client, key, organization):
    first = span(id="same")
    assert post(client, "/v1/traces/batch", {"traces": [first, span()]}, key).status_code == 202
    response = post(client, "/v1/traces/batch", {"traces": [first, {"id": 5}]}, key)
    assert response.status_code == 207
    assert counted(organization) == 2


def test_projects_of_one_organization_share_the_count(client, key, project, organization):
    other = ApiKeyFactory(project=ProjectFactory(organization=organization))
    stranger = ApiKeyFactory()
    post(client, "/v1/traces", span(), key)
    post(client, "/v1/traces", span(), other.secret)
    post(client, "/v1/traces", span(), stranger.secret)
    assert counted(organization) == 2
    assert counted(stranger.project.organization) == 1


def test_otlp_spans_are_counted(client, key, organization):
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000001000000000",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    assert post(client, "/otlp/v1/traces", body, key).status_code == 200
    assert counted(organization) == 1


def test_redis_down_never_fails_ingest(client, key, monkeypatch):
    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.1)
    monkeypatch.setattr(usage, "_redis", lambda: broken)
    assert post(client, "/v1/traces", span(), key).status_code == 202
    assert Span.objects.count() == 1


def test_the_task_persists_counts_and_never_lowers_them(client, key, organization):
    post(client, "/v1/traces/batch", {"traces": [span(), span()]}, key)
    assert persist_usage() == 1
    counter = UsageCounter.objects.get(organization=organization)
    assert (counter.month, counter.traces) == (usage.month_start(), 2)

    usage._redis().hset(usage.usage_key(usage.month_start()), str(organization.pk), 1)  # Redis lost data
    persist_usage()
    assert UsageCounter.objects.get(organization=organization).traces == 2


def test_reconciliation_counts_the_span_table(client, key, organization, monkeypatch):
    monkeypatch.setattr(usage, "_paused_until", 1e18)  # increments lost, as when Redis is down
    post(client, "/v1/traces/batch", {"traces": [span(), span(), span()]}, key)
    monkeypatch.setattr(usage, "_paused_until", 0.0)
    assert counted(organization) == 0

    assert reconcile_usage() == 1
    assert UsageCounter.objects.get(organization=organization).traces == 3
    assert counted(organization) == 3  # Redis raised too, so the hot path sees it
    assert usage_reconcile() == {}  # nothing missing any more


def test_usage_endpoint(client, key, organization):
    post(client, "/v1/traces/batch", {"traces": [span() for _ in range(5)]}, key)
    DestinationFactory(project=ProjectFactory(organization=organization))
    response = client.get("/v1/usage", **auth(key))
    assert response.status_code == 200, response.content
    body = response.json()
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    assert body == {
        "plan": {"code": "starter", "name": "Starter", "price_cents": 0},
        "status": "active",
        "limits": {"traces_per_month": 100_000, "destinations": 2, "retention_days": 7},
        "usage": {"traces": 5, "destinations": 1},
        "percent_used": 0.01,
        "ingest_paused": False,
        "period": {
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": end.isoformat().replace("+00:00", "Z"),
        },
    }
    assert Subscription.objects.get(organization=organization).plan.code == "starter"


def test_usage_of_an_enterprise_organization_with_custom_limits(client, key, organization):
    SubscriptionFactory(organization=organization, plan="enterprise", custom_monthly_traces=1_000)
    post(client, "/v1/traces/batch", {"traces": [span() for _ in range(10)]}, key)
    body = client.get("/v1/usage", **auth(key)).json()
    assert body["plan"]["code"] == "enterprise"
    assert body["limits"] == {"traces_per_month": 1_000, "destinations": None, "retention_days": None}
    assert body["percent_used"] == 1.0


def test_usage_needs_the_read_scope(client, project):
    ingest_only = ApiKeyFactory(project=project, scopes=["ingest"])
    error_of(client.get("/v1/usage", **auth(ingest_only.secret)), 403, "missing_scope")
    error_of(client.get("/v1/usage"), 401, "unauthenticated")


def test_proxy_traces_are_counted(project, organization):
    from apps.proxy.writer import TraceWriter

    target = (str(project.pk), str(organization.pk), None)
    TraceWriter._store(target, [{"id": "proxy-1"}, {"id": "proxy-2"}])
    TraceWriter._store(target, [{"id": "proxy-1"}])  # a replayed spill: already stored
    assert counted(organization) == 2
