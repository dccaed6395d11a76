"""Reads of stored spans, always within one project."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from apps.traces.models import Span
from apps.traces.store import storable_text

GROUPS = ("model", "provider", "kind", "status", "hour", "day")
PERCENTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class SpanFilters:
    start: datetime | None = None
    end: datetime | None = None
    model: str | None = None
    provider: str | None = None
    kind: str | None = None
    status: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    environment: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    min_cost: Decimal | None = None
    max_cost: Decimal | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    q: str | None = None
    root: bool | None = None


def spans_filtered(*, project_id: uuid.UUID, filters: SpanFilters) -> QuerySet[Span]:
    qs = Span.objects.for_project(project_id)
    f = filters
    conditions = {
        "start_time__gte": f.start,
        "start_time__lt": f.end,
        "model": f.model,
        "provider": f.provider,
        "kind": f.kind,
        "status": f.status,
        "session_id": f.session_id,
        "user_id": f.user_id,
        "trace_id": f.trace_id,
        "cost__gte": f.min_cost,
        "cost__lte": f.max_cost,
        "latency_ms__gte": f.min_latency_ms,
        "latency_ms__lte": f.max_latency_ms,
        "search_text__icontains": f.q,
        "metadata__environment": f.environment,
    }
    qs = qs.filter(**{key: value for key, value in conditions.items() if value is not None})
    for key, value in f.tags:  # containment: a tag key is data, never a lookup like `regex` or `isnull`
        qs = qs.filter(metadata__contains={"tags": {key: value}})
    if f.root is not None:
        qs = qs.filter(parent_id__isnull=f.root)
    return qs


def traces_filtered(*, project_id: uuid.UUID, filters: SpanFilters) -> QuerySet[Span]:
    """The root spans of the traces holding at least one span that matches `filters`
    (a trace is found by its LLM call's model even when its root is an agent)."""
    roots = spans_filtered(project_id=project_id, filters=SpanFilters(root=True))
    matching = replace(filters, root=None)
    if matching == SpanFilters():
        return roots
    trace_ids = spans_filtered(project_id=project_id, filters=matching).values("trace_id")
    return roots.filter(trace_id__in=trace_ids)


def trace_summaries(*, project_id: uuid.UUID, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per trace: span and error counts, tokens, cost, duration and models of all its spans."""
    spans = Span.objects.for_project(project_id).filter(trace_id__in=trace_ids)
    rows = spans.values("trace_id").annotate(
        spans=Count("id"),
        errors=Count("id", filter=Q(status="error")),
        total_tokens=Sum("total_tokens"),
        cost=Sum("cost"),
        first=Min("start_time"),
        last=Max("end_time"),
    )
    models: dict[str, list[str]] = defaultdict(list)
    for trace_id, model in (
        spans.exclude(model=None).values_list("trace_id", "model").distinct().order_by("trace_id", "model")
    ):
        models[trace_id].append(model)
    return {
        row["trace_id"]: {
            "spans": row["spans"],
            "errors": row["errors"],
            "total_tokens": row["total_tokens"] or 0,
            "cost": row["cost"] or Decimal(0),
            "duration_ms": (row["last"] - row["first"]).total_seconds() * 1000 if row["last"] else None,
            "models": models[row["trace_id"]],
        }
        for row in rows
    }


# The canonical fields a stored span document carries after its id, in order.
_DOCUMENT_KEYS = (
    "trace_id",
    "parent_id",
    "session_id",
    "user_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "provider",
    "model",
    "status",
    "request",
    "response",
    "metadata",
    "metrics",
    "error",
    "attributes",
    "received_at",
)


def span_document(span: Span) -> dict[str, Any]:
    """A stored span in the canonical shape, plus what the store knows (`received_at`)."""
    doc: dict[str, Any] = {"id": span.span_id}
    for key in _DOCUMENT_KEYS:
        value = getattr(span, key)
        doc[key] = value.isoformat() if isinstance(value, datetime) else value
    return {key: value for key, value in doc.items() if value is not None}


def row_document(row: dict[str, Any]) -> dict[str, Any]:
    """The canonical document of a row `span_row` made but nobody stored (dry-runs)."""
    doc = {"id": row["span_id"], **{key: row.get(key) for key in _DOCUMENT_KEYS}}
    return {key: value for key, value in doc.items() if value is not None}


_JSON_FIELDS = frozenset({"request", "response", "metadata", "metrics", "error", "attributes"})
_LOAD_SQL = "SELECT id, span_id, " + ", ".join(_DOCUMENT_KEYS) + " FROM traces_span WHERE {where} ORDER BY id"


def _documents(where: str, params: list[Any], fallback: QuerySet[Span]) -> list[tuple[int, dict[str, Any]]]:
    """(row id, document) of stored spans. On PostgreSQL one raw query with the
    JSON columns decoded by orjson: the route and deliver tasks read every span
    they handle, and model instances cost more than the rest of the work."""
    if connection.vendor != "postgresql":
        return [(span.pk, span_document(span)) for span in fallback.order_by("id")]
    with connection.cursor() as cursor:
        cursor.execute(_LOAD_SQL.format(where=where), params)
        rows = cursor.fetchall()
    documents = []
    for pk, span_id, *values in rows:
        doc: dict[str, Any] = {"id": span_id}
        for key, value in zip(_DOCUMENT_KEYS, values, strict=True):
            if value is None:
                continue
            if key in _JSON_FIELDS:
                value = orjson.loads(value) if isinstance(value, (str, bytes)) else value
            elif isinstance(value, datetime):
                value = value.isoformat()
            doc[key] = value
        documents.append((pk, doc))
    return documents


def batch_documents(batch_id: uuid.UUID | str) -> list[tuple[int, dict[str, Any]]]:
    """The spans an ingest batch stored, as (row id, canonical document), in arrival order."""
    return _documents("batch_id = %s", [batch_id], Span.objects.filter(batch_id=batch_id))


def documents_by_pk(*, project_id: uuid.UUID, pks: list[int]) -> dict[int, dict[str, Any]]:
    """Stored spans of a project by row id (spans deleted since are missing)."""
    fallback = Span.objects.for_project(project_id).filter(pk__in=pks)
    return dict(_documents("project_id = %s AND id = ANY(%s)", [project_id, list(pks)], fallback))


def recent_documents(*, project_id: uuid.UUID, traces: int) -> list[dict[str, Any]]:
    """Every span of the project's `traces` most recently received traces."""
    trace_ids = []
    for trace_id in (
        Span.objects.for_project(project_id)
        .order_by("-received_at", "-id")
        .values_list("trace_id", flat=True)[: traces * 20]
    ):
        if trace_id not in trace_ids:
            trace_ids.append(trace_id)
            if len(trace_ids) == traces:
                break
    spans = Span.objects.for_project(project_id).filter(trace_id__in=trace_ids).order_by("start_time", "id")
    return [span_document(span) for span in spans]


def trace_spans_elsewhere(
    *, project_id: uuid.UUID, trace_ids: list[str], batch_id: uuid.UUID | str
) -> list[tuple[int, dict[str, Any], bool]]:
    """Spans of these traces stored by other batches: (row id, document, whether its batch was routed)."""
    spans = (
        Span.objects.for_project(project_id)
        .filter(trace_id__in=trace_ids)
        .exclude(batch_id=batch_id)
        .select_related("batch")
        .order_by("id")
    )
    return [
        (span.pk, span_document(span), span.batch is None or span.batch.routed_at is not None)
        for span in spans
    ]


def trace_tree(*, project_id: uuid.UUID, trace_id: str) -> dict[str, Any] | None:
    """The spans of a trace as a tree, with totals; None when the trace is unknown."""
    spans = list(
        Span.objects.for_project(project_id)
        .filter(trace_id=storable_text(trace_id))
        .order_by("start_time", "id")
    )
    if not spans:
        return None
    nodes = {span.span_id: {**span_document(span), "children": []} for span in spans}
    roots = []
    for span in spans:
        parent = nodes.get(span.parent_id) if span.parent_id else None
        (parent["children"] if parent is not None else roots).append(nodes[span.span_id])
    ends = [s.end_time for s in spans if s.end_time]
    start = min(s.start_time for s in spans)
    totals = {
        "spans": len(spans),
        "errors": sum(1 for s in spans if s.status == "error"),
        "prompt_tokens": sum(s.prompt_tokens or 0 for s in spans),
        "completion_tokens": sum(s.completion_tokens or 0 for s in spans),
        "total_tokens": sum(s.total_tokens or 0 for s in spans),
        "cost": float(sum((s.cost or Decimal(0)) for s in spans)),
        "duration_ms": (max(ends) - start).total_seconds() * 1000 if ends else None,
        "models": sorted({s.model for s in spans if s.model}),
    }
    return {"trace_id": trace_id, "start_time": start.isoformat(), "totals": totals, "spans": roots}


class _Percentile(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, fraction=fraction)


def _percentiles_in_python(values: list[float]) -> dict[str, float | None]:
    values = sorted(values)
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        if not values:
            out[f"p{int(p * 100)}"] = None
            continue
        rank = p * (len(values) - 1)  # linear interpolation, like percentile_cont
        low = int(rank)
        high = min(low + 1, len(values) - 1)
        out[f"p{int(p * 100)}"] = values[low] + (values[high] - values[low]) * (rank - low)
    return out


def spans_aggregate(*, project_id: uuid.UUID, filters: SpanFilters, group_by: str | None) -> dict[str, Any]:
    qs = spans_filtered(project_id=project_id, filters=filters)
    key = {"hour": TruncHour("start_time"), "day": TruncDay("start_time")}.get(
        group_by or "", F(group_by or "kind")
    )
    measures = {
        "count": Count("id"),
        "errors": Count("id", filter=Q(status="error")),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "total_tokens": Sum("total_tokens"),
        "cost": Sum("cost"),
    }
    postgres = connection.vendor == "postgresql"
    if postgres:
        measures.update({f"p{int(p * 100)}": _Percentile("latency_ms", p) for p in PERCENTILES})

    def shape(row: dict[str, Any], latencies: dict[str, float | None]) -> dict[str, Any]:
        count = row["count"]
        return {
            "count": count,
            "error_rate": row["errors"] / count if count else 0.0,
            "prompt_tokens": row["prompt_tokens"] or 0,
            "completion_tokens": row["completion_tokens"] or 0,
            "total_tokens": row["total_tokens"] or 0,
            "cost": float(row["cost"] or 0),
            "latency_ms": latencies,
        }

    def latencies_of(row: dict[str, Any], values: list[float]) -> dict[str, float | None]:
        if postgres:
            return {f"p{int(p * 100)}": row[f"p{int(p * 100)}"] for p in PERCENTILES}
        return _percentiles_in_python(values)

    total_row = qs.aggregate(**measures)
    all_latencies = [] if postgres else list(qs.exclude(latency_ms=None).values_list("latency_ms", flat=True))
    result: dict[str, Any] = {
        "group_by": group_by,
        "totals": shape(total_row, latencies_of(total_row, all_latencies)),
    }
    if group_by:
        rows = qs.annotate(group=key).values("group").annotate(**measures).order_by("group")
        per_group: dict[Any, list[float]] = defaultdict(list)
        if not postgres:
            for group, latency in (
                qs.annotate(group=key).exclude(latency_ms=None).values_list("group", "latency_ms")
            ):
                per_group[group].append(latency)
        result["groups"] = [
            {
                "key": row["group"].isoformat() if isinstance(row["group"], datetime) else row["group"],
                **shape(row, latencies_of(row, per_group[row["group"]])),
            }
            for row in rows
        ]
    return result
