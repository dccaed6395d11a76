"""Routing one stored ingest batch.

A trace's sampling decision may depend on spans that came in other batches
(an error arriving late, a slow final step). The store holds them all, so the
batch is judged with the facts of every stored span of its traces; and when
this batch turns a trace from dropped to kept, the spans of that trace that
earlier batches already routed (and dropped) are routed again now, to the
destinations that newly keep them. Two batches of one trace routed at the same
time both see each other's stored spans, so they reach the same decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.destinations.models import Destination
from apps.privacy.services import suppressed_spans_drop
from apps.routing.context import TransformContext
from apps.routing.router import SpanPlan, Target, plan_spans, trace_facts
from apps.routing.services import LiveRouting, live_routing, transform_context
from apps.traces.models import IngestBatch
from apps.traces.selectors import batch_documents, trace_spans_elsewhere


@dataclass
class BatchRouting:
    batch_id: uuid.UUID
    project_id: uuid.UUID
    live: LiveRouting
    context: TransformContext
    plans: list[SpanPlan]
    # Spans of earlier batches whose traces this batch turned from dropped to kept,
    # with only the destinations that newly keep them.
    backfill: list[SpanPlan] = field(default_factory=list)

    def all_plans(self) -> Iterable[SpanPlan]:
        yield from self.plans
        yield from self.backfill


def enabled_destinations(project_id: uuid.UUID) -> set[str]:
    return {
        str(pk)
        for pk in Destination.objects.for_project(project_id)
        .filter(enabled=True)
        .values_list("id", flat=True)
    }


def _newly_kept(before: SpanPlan, after: SpanPlan) -> SpanPlan | None:
    kept_before = {t.destination_id for t in before.targets}
    added: list[Target] = [t for t in after.targets if t.destination_id not in kept_before]
    if not added:
        return None
    return SpanPlan(after.span, matched=after.matched, targets=added)


def _with_pks(plans: list[SpanPlan], stored: list[tuple[int, dict]]) -> list[SpanPlan]:
    for plan, (pk, _) in zip(plans, stored, strict=True):
        plan.pk = pk
    return plans


def route_batch_plans(batch_id: uuid.UUID | str) -> BatchRouting | None:
    """The routing plan of a stored batch; None if it does not exist or was routed."""
    batch = IngestBatch.objects.filter(pk=batch_id).first()
    if batch is None or batch.routed_at is not None:
        return None
    live = live_routing(batch.project_id)
    context = transform_context(batch.project_id, live.hash_key, batch.api_key_id)
    config = live.config
    # Spans of a user or session erased after they were accepted are deleted, never routed.
    stored = suppressed_spans_drop(batch.project_id, batch_documents(batch.pk))
    spans = [doc for _, doc in stored]
    enabled = enabled_destinations(batch.project_id)
    if not config.uses_trace_facts or not spans:
        plans = _with_pks(plan_spans(config, spans, enabled=enabled), stored)
        return BatchRouting(batch.pk, batch.project_id, live, context, plans)

    trace_ids = sorted({s.get("trace_id") or s["id"] for s in spans})
    elsewhere = trace_spans_elsewhere(project_id=batch.project_id, trace_ids=trace_ids, batch_id=batch.pk)
    known = trace_facts([span for _, span, _ in elsewhere])
    plans = _with_pks(plan_spans(config, spans, known_facts=known, enabled=enabled), stored)

    routed_before = [(pk, span) for pk, span, routed in elsewhere if routed]
    backfill: list[SpanPlan] = []
    if routed_before:
        facts_before = trace_facts([span for _, span in routed_before])
        facts_now = trace_facts([*spans, *(span for _, span, _ in elsewhere)])
        for pk, span in routed_before:
            trace_id = span.get("trace_id") or span["id"]
            if facts_before[trace_id] == facts_now[trace_id]:
                continue
            before = plan_spans(config, [span], facts={trace_id: facts_before[trace_id]}, enabled=enabled)[0]
            after = plan_spans(config, [span], facts={trace_id: facts_now[trace_id]}, enabled=enabled)[0]
            extra = _newly_kept(before, after)
            if extra is not None:
                extra.pk = pk
                backfill.append(extra)
    return BatchRouting(batch.pk, batch.project_id, live, context, plans, backfill)
