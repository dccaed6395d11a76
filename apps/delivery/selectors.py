"""Reading the delivery ledger."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, Q, QuerySet, Sum
from django.utils import timezone

from apps.delivery.breaker import circuit_state
from apps.delivery.models import Delivery, DeliveryStatus
from apps.destinations.models import Destination
from apps.traces.models import Span


def deliveries_filtered(
    *,
    project_id: uuid.UUID,
    destination_id: uuid.UUID | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    trace_id: str | None = None,
) -> QuerySet[Delivery]:
    queryset = Delivery.objects.for_project(project_id)
    if destination_id is not None:
        queryset = queryset.filter(destination_id=destination_id)
    if status is not None:
        queryset = queryset.filter(status=status)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    if trace_id is not None:
        spans = list(
            Span.objects.for_project(project_id).filter(trace_id=trace_id).values_list("pk", "batch_id")
        )
        pks = {pk for pk, _ in spans}
        candidates = queryset.filter(batch_id__in={batch for _, batch in spans if batch}).values_list(
            "pk", "items"
        )
        queryset = queryset.filter(pk__in=[pk for pk, items in candidates if any(i[0] in pks for i in items)])
    return queryset


def destination_health(destination: Destination) -> dict[str, Any]:
    """Circuit state, backlog and the last day's success rate of one destination."""
    since = timezone.now() - timedelta(hours=24)
    rows = Delivery.objects.filter(destination=destination)
    recent = rows.filter(finished_at__gte=since).aggregate(
        delivered=Count("id", filter=Q(status=DeliveryStatus.DELIVERED)),
        dead=Count("id", filter=Q(status=DeliveryStatus.DEAD)),
    )
    pending = rows.filter(status=DeliveryStatus.PENDING).aggregate(
        spans=Sum("span_count"), oldest=Min("created_at")
    )
    finished = recent["delivered"] + recent["dead"]
    last_failure = (
        rows.exclude(last_error="").order_by("-updated_at").values("last_error", "updated_at").first()
    )
    return {
        "circuit": circuit_state(destination.pk),
        "pending_spans": pending["spans"] or 0,
        "lag_seconds": (timezone.now() - pending["oldest"]).total_seconds() if pending["oldest"] else 0.0,
        "success_rate_24h": recent["delivered"] / finished if finished else None,
        "dead_letters_24h": recent["dead"],
        "last_error": last_failure["last_error"] if last_failure else None,
        "last_error_at": last_failure["updated_at"].isoformat() if last_failure else None,
    }
