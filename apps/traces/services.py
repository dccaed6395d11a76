"""Writes on stored traces other than ingest itself."""

from __future__ import annotations

import uuid

from django.utils import timezone

from apps.traces.models import IngestBatch


def batch_mark_routed(*, batch_id: uuid.UUID) -> bool:
    """Record that a batch's spans were handed on; False if it was already done."""
    updated = IngestBatch.objects.filter(pk=batch_id, routed_at__isnull=True).update(routed_at=timezone.now())
    return updated == 1
