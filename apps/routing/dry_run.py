"""Dry-run: what routing would do with given spans or the project's recent
traces, under the live or a proposed configuration. It sends nothing."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import jsonpatch

from apps.accounts.models import Project
from apps.destinations.models import Destination
from apps.routing.batches import enabled_destinations
from apps.routing.config import CompiledConfig, compile_config
from apps.routing.context import TransformContext
from apps.routing.router import SpanPlan, Target, plan_spans, render
from apps.routing.sampling import Decision
from apps.routing.services import live_routing, transform_context


def _decision(decision: Decision) -> dict[str, Any]:
    return {"keep": decision.keep, "rate": round(decision.rate, 6), "policy": decision.policy}


def _target(
    config: CompiledConfig,
    plan: SpanPlan,
    target: Target,
    ctx: TransformContext,
    destinations: dict[str, Destination],
) -> dict[str, Any]:
    destination = destinations.get(target.destination_id)
    payload, report = render(config, plan, target, ctx)
    return {
        "destination_id": target.destination_id,
        "name": destination.name if destination else None,
        "type": destination.type if destination else None,
        "role": target.role,
        "rule": {"id": target.rule.id, "name": target.rule.name} if target.rule else None,
        "fallback_id": target.fallback_id,
        "sampling": _decision(target.decision),
        "payload": payload,
        "diff": jsonpatch.make_patch(plan.span, payload).patch,
        "transformations": report.as_dict(),
    }


def dry_run(
    *,
    project: Project,
    spans: list[dict[str, Any]],
    document: dict[str, Any] | None = None,
    api_key_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Per trace and span: matched rules, sampling decisions with reasons, the
    destinations, and each destination's payload with a JSON Patch against the original.
    Transformations see `api_key_id` (the caller's key) as the sending key."""
    live = live_routing(project.pk)
    destinations = {str(d.pk): d for d in Destination.objects.for_project(project.pk)}
    if document is not None:
        config = compile_config(document, destination_ids=set(destinations))
        version: int | None = None
    else:
        config, version = live.config, live.config.version
    ctx = transform_context(project.pk, live.hash_key, api_key_id)
    plans = plan_spans(config, spans, enabled=enabled_destinations(project.pk))
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for plan in plans:
        span = plan.span
        traces[span.get("trace_id") or span["id"]].append(
            {
                "span_id": span["id"],
                "name": span.get("name"),
                "matched_rules": [{"id": rule.id, "name": rule.name} for rule in plan.matched],
                "default_destinations": not plan.matched,
                "destinations": [_target(config, plan, t, ctx, destinations) for t in plan.targets],
                "sampled_out": [
                    {"destination_id": t.destination_id, "role": t.role, "sampling": _decision(t.decision)}
                    for t in plan.dropped
                ],
                "disabled_destinations": plan.disabled,
            }
        )
    return {
        "version": version,
        "proposed": document is not None,
        "traces": [{"trace_id": trace_id, "spans": items} for trace_id, items in traces.items()],
    }
