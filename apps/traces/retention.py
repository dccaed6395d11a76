"""Retention: stored spans, their ingest batches and delivery records older than a
project's retention are deleted in bounded batches.

Each statement deletes at most RETENTION_BATCH rows picked by primary key through
the received_at index, so no statement holds locks for long and ingest carries
on; the task stops after a time budget and resumes on its next run. The
retention is `UNTRACE_RETENTION_DAYS` unless a resolver registered by the plan
logic (billing) gives an organization its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.accounts.models import Project
from apps.delivery.models import Delivery, DeliveryStatus
from apps.traces.models import IngestBatch, Span

RETENTION_BATCH = 5000
# Functions (organization id -> days or None) consulted before the default, in order.
RETENTION_RESOLVERS: list[Callable[[uuid.UUID], int | None]] = []


def retention_days(organization_id: uuid.UUID) -> int:
    for resolver in RETENTION_RESOLVERS:
        days = resolver(organization_id)
        if days is not None:
            return days
    return settings.UNTRACE_RETENTION_DAYS


def _delete_in_batches(queryset, deadline: float) -> int:
    deleted = 0
    while time.monotonic() < deadline:
        pks = list(queryset.values_list("pk", flat=True)[:RETENTION_BATCH])
        if not pks:
            break
        count, _ = queryset.model.objects.filter(pk__in=pks).delete()
        deleted += count
        if len(pks) < RETENTION_BATCH:
            break
    return deleted


def apply_retention(*, budget_seconds: float = 50.0) -> dict[str, int]:
    """Delete what is past each project's retention; returns the rows deleted per kind."""
    deadline = time.monotonic() + budget_seconds
    totals = {"spans": 0, "batches": 0, "deliveries": 0}
    now = timezone.now()
    for project_id, organization_id in Project.objects.values_list("pk", "organization_id"):
        cutoff = now - timedelta(days=retention_days(organization_id))
        totals["spans"] += _delete_in_batches(
            Span.objects.filter(project_id=project_id, received_at__lt=cutoff), deadline
        )
        # Finished deliveries only: a pending one still has work to do.
        totals["deliveries"] += _delete_in_batches(
            Delivery.objects.filter(project_id=project_id, created_at__lt=cutoff).exclude(
                status=DeliveryStatus.PENDING
            ),
            deadline,
        )
        totals["batches"] += _delete_in_batches(
            IngestBatch.objects.filter(project_id=project_id, created_at__lt=cutoff, routed_at__isnull=False),
            deadline,
        )
        if time.monotonic() >= deadline:
            break
    return totals
