"""Writes on stored traces other than ingest itself."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.traces.enqueue import publish_routing
from apps.traces.models import IngestBatch

RECONCILE_LIMIT = 1000


def batch_mark_routed(*, batch_id: uuid.UUID | str) -> bool:
    """Record that a batch's spans were handed on; False if it was already done."""
    updated = IngestBatch.objects.filter(pk=batch_id, routed_at__isnull=True).update(routed_at=timezone.now())
    return updated == 1


def batches_requeue_unrouted() -> int:
    """The reconciler: enqueue again every batch stored but not routed in time
    (broker down at ingest, a worker killed mid-task). Routing is idempotent per
    batch, so a batch whose first task is merely slow is harmless to requeue."""
    # A batch younger than the grace period may still have its task in flight.
    cutoff = timezone.now() - timedelta(seconds=settings.UNTRACE_RECONCILE_AFTER_SECONDS)
    batch_ids = list(
        IngestBatch.objects.filter(routed_at__isnull=True, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("id", flat=True)[:RECONCILE_LIMIT]
    )
    return sum(1 for batch_id in batch_ids if publish_routing(batch_id))
