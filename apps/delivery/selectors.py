"""Reading the delivery ledger."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
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


FINISHED = (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.REROUTED)


def deliveries_over_time(*, project_id: uuid.UUID, start: datetime, bucket: str) -> list[dict[str, Any]]:
    """Finished deliveries of a project since `start`, counted per `bucket` ("hour" or "day")
    of when they finished and per outcome, oldest bucket first; buckets without any are left out:
    `[{"bucket": datetime, "delivered": n, "dead": n, "rerouted": n}, ...]`."""
    trunc = {"hour": TruncHour, "day": TruncDay}[bucket]
    rows = (
        Delivery.objects.for_project(project_id)
        .filter(finished_at__gte=start, status__in=FINISHED)
        .annotate(bucket=trunc("finished_at"))
        .values("bucket", "status")
        .annotate(count=Count("id"))
        .order_by("bucket")
    )
    buckets: dict[datetime, dict[str, Any]] = {}
    for row in rows:
        counts = buckets.setdefault(
            row["bucket"], {"bucket": row["bucket"], **{s.value: 0 for s in FINISHED}}
        )
        counts[row["status"]] = row["count"]
    return list(buckets.values())


_BY_DESTINATION_SQL = """
WITH delivered AS (
    SELECT DISTINCT d.destination_id, (item ->> 0)::bigint AS span_pk
    FROM delivery_delivery d, jsonb_array_elements(d.items) AS item
    WHERE d.project_id = %s AND d.status = 'delivered'
)
SELECT delivered.destination_id,
       count(*), count(*) FILTER (WHERE s.status = 'error'),
       sum(s.prompt_tokens), sum(s.completion_tokens), sum(s.total_tokens), sum(s.cost),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s.latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY s.latency_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s.latency_ms)
FROM delivered JOIN traces_span s ON s.id = delivered.span_pk
WHERE s.id IN ({spans})
GROUP BY delivered.destination_id
ORDER BY delivered.destination_id
"""


def spans_by_destination(*, project_id: uuid.UUID, spans: QuerySet[Span]) -> list[dict[str, Any]]:
    """Per destination, the aggregates of the given spans it received (delivered deliveries)."""
    names = dict(Destination.objects.for_project(project_id).values_list("pk", "name"))
    rows: list[tuple] = []
    if connection.vendor == "postgresql":
        span_sql, span_params = spans.values("id").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(_BY_DESTINATION_SQL.format(spans=span_sql), [project_id, *span_params])
            rows = cursor.fetchall()
    else:
        rows = _by_destination_in_python(project_id, spans)
    result = []
    for destination_id, count, errors, prompt, completion, total, cost, p50, p95, p99 in rows:
        result.append(
            {
                "key": str(destination_id),
                "name": names.get(destination_id),
                "count": count,
                "error_rate": errors / count if count else 0.0,
                "prompt_tokens": prompt or 0,
                "completion_tokens": completion or 0,
                "total_tokens": total or 0,
                "cost": float(cost or 0),
                "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
            }
        )
    return result


def _by_destination_in_python(project_id: uuid.UUID, spans: QuerySet[Span]) -> list[tuple]:
    """The same aggregation where jsonb is not available (the SQLite development default)."""
    from apps.traces.selectors import _percentiles_in_python

    wanted = {
        pk: (status, prompt, completion, total, cost, latency)
        for pk, status, prompt, completion, total, cost, latency in spans.values_list(
            "pk", "status", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "latency_ms"
        )
    }
    per_destination: dict[Any, set[int]] = {}
    delivered = Delivery.objects.for_project(project_id).filter(status=DeliveryStatus.DELIVERED)
    for destination_id, items in delivered.values_list("destination_id", "items"):
        per_destination.setdefault(destination_id, set()).update(i[0] for i in items if i[0] in wanted)
    rows = []
    for destination_id in sorted(per_destination, key=str):
        pks = per_destination[destination_id]
        if not pks:
            continue
        values = [wanted[pk] for pk in pks]
        latencies = _percentiles_in_python([v[5] for v in values if v[5] is not None])
        rows.append(
            (
                destination_id,
                len(values),
                sum(1 for v in values if v[0] == "error"),
                sum(v[1] or 0 for v in values),
                sum(v[2] or 0 for v in values),
                sum(v[3] or 0 for v in values),
                sum((v[4] or 0) for v in values),
                latencies["p50"],
                latencies["p95"],
                latencies["p99"],
            )
        )
    return rows
