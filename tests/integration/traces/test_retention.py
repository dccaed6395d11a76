from datetime import timedelta

import pytest
from django.utils import timezone

from apps.delivery.models import Delivery
from apps.traces import retention
from apps.traces.models import IngestBatch, Span
from tests.factories import DestinationFactory, ProjectFactory
from tests.integration.ingest.helpers import post

pytestmark = pytest.mark.django_db


def _store(client, key, prefix: str, n: int = 3) -> None:
    spans = [{"id": f"{prefix}{i}", "model": "gpt-4o-mini"} for i in range(n)]
    assert post(client, "/v1/traces/batch", {"traces": spans}, key).status_code == 202


def _age(days: int) -> None:
    past = timezone.now() - timedelta(days=days)
    Span.objects.update(received_at=past)
    IngestBatch.objects.update(created_at=past, routed_at=past)
    Delivery.objects.update(created_at=past)


def test_old_spans_batches_and_finished_deliveries_go(client, api_key, settings, monkeypatch):
    settings.UNTRACE_RETENTION_DAYS = 7
    monkeypatch.setattr(retention, "RETENTION_BATCH", 2)  # several bounded statements
    _store(client, api_key.secret, "old", n=5)
    destination = DestinationFactory(project=api_key.project)
    for status in ("delivered", "dead", "pending"):
        Delivery.objects.create(
            project=api_key.project,
            destination=destination,
            role="primary",
            items=[],
            span_count=0,
            status=status,
            next_attempt_at=timezone.now(),
            expires_at=timezone.now(),
        )
    _age(days=8)
    _store(client, api_key.secret, "new", n=2)

    totals = retention.apply_retention()
    assert totals == {"spans": 5, "batches": 1, "deliveries": 2}
    assert sorted(Span.objects.values_list("span_id", flat=True)) == ["new0", "new1"]
    assert list(Delivery.objects.values_list("status", flat=True)) == ["pending"]  # work still to do


def test_an_organization_may_keep_data_longer(client, api_key, settings, monkeypatch):
    settings.UNTRACE_RETENTION_DAYS = 7
    other = ProjectFactory()
    monkeypatch.setattr(
        retention, "RETENTION_RESOLVERS", [lambda org: 90 if org == api_key.project.organization_id else None]
    )
    _store(client, api_key.secret, "kept")
    _age(days=30)
    assert retention.retention_days(other.organization_id) == 7
    assert retention.apply_retention()["spans"] == 0
    assert Span.objects.count() == 3


def test_the_plan_sets_the_retention(settings):
    from apps.billing.models import Plan
    from tests.factories import SubscriptionFactory

    settings.UNTRACE_RETENTION_DAYS = 365
    starter = SubscriptionFactory(plan=Plan.objects.get(code="starter"))
    scale = SubscriptionFactory(plan=Plan.objects.get(code="scale"))
    assert retention.retention_days(starter.organization_id) == 7
    assert retention.retention_days(scale.organization_id) == 90
    assert (
        retention.retention_days(ProjectFactory().organization_id) == 365
    )  # default plan: no limit of its own
