"""Which spans go to which destinations, in what form.

`plan_spans` decides, per span: the rules that match (in priority order, until
one says `stop`), the destinations they name, the sampling decision for each,
and which rule's transformations apply. `render` produces the payload one
destination receives. Neither sends anything: the route task hands the plan to
delivery, and dry-run shows it.

Conflict resolution: the destinations of all matched rules are united and
de-duplicated. When two matched rules name the same destination, the first
rule (by priority) that keeps the span after sampling owns it: its metadata and
transformations shape the payload. A rule with `stop` ends evaluation after
itself. Spans no rule matched go to the default destinations.

Sampling is nested (see `apps.routing.sampling`): a span reaches a destination
when the project's, the owning rule's and the destination's policies all keep
its trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.routing.config import CompiledConfig, Rule
from apps.routing.context import TransformContext, TransformReport
from apps.routing.sampling import (
    KEEP_ALL,
    Decision,
    Sampler,
    TraceFacts,
    decide_all,
    span_facts,
    trace_fraction,
)

PRIMARY, SPLIT, SHADOW, DEFAULT = "primary", "split", "shadow", "default"


@dataclass(frozen=True, slots=True)
class Target:
    destination_id: str
    role: str  # primary | split | shadow | default
    rule: Rule | None  # None for default destinations
    decision: Decision
    fallback_id: str | None = None


@dataclass(slots=True)
class SpanPlan:
    span: dict[str, Any]
    pk: int | None = None  # the stored span's row id, when it is stored
    matched: list[Rule] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)  # kept after sampling
    dropped: list[Target] = field(default_factory=list)  # sampled out
    disabled: list[str] = field(default_factory=list)  # destinations chosen but disabled
    # The span after the project-level transformations, made once for all targets.
    base: tuple[dict[str, Any], TransformReport] | None = None


def trace_facts(spans: list[dict[str, Any]]) -> dict[str, TraceFacts]:
    facts: dict[str, TraceFacts] = {}
    for span in spans:
        trace_id = span.get("trace_id") or span["id"]
        current = span_facts(span)
        previous = facts.get(trace_id)
        facts[trace_id] = current if previous is None else previous.merge(current)
    return facts


def _samplers(config: CompiledConfig, rule: Rule | None, destination_id: str) -> tuple[Sampler, ...]:
    """The policies that apply to one (rule, destination) pair, computed once per config."""
    key = (rule.id if rule is not None else None, destination_id)
    found = config.sampler_cache.get(key)
    if found is None:
        levels = (config.sampler, rule.sampler if rule else None, config.policy(destination_id).sampler)
        found = config.sampler_cache[key] = tuple(s for s in levels if s is not None)
    return found


def plan_span(
    config: CompiledConfig,
    span: dict[str, Any],
    facts: TraceFacts,
    *,
    enabled: set[str] | None = None,
) -> SpanPlan:
    plan = SpanPlan(span)
    trace_id = span.get("trace_id") or span["id"]
    u = -1.0  # the trace's hash, computed when a sampler needs it
    chosen: dict[str, Target] = {}
    dropped: dict[str, Target] = {}

    def offer(destination_id: str, role: str, rule: Rule | None) -> None:
        nonlocal u
        if destination_id in chosen:
            return
        if enabled is not None and destination_id not in enabled:
            if destination_id not in plan.disabled:
                plan.disabled.append(destination_id)
            return
        samplers = _samplers(config, rule, destination_id)
        if samplers:
            if u < 0:
                u = trace_fraction(trace_id)
            decision = decide_all(samplers, u, facts)
        else:
            decision = KEEP_ALL
        target = Target(destination_id, role, rule, decision, rule.fallback if rule else None)
        if decision.keep:
            chosen[destination_id] = target
            dropped.pop(destination_id, None)
        else:
            dropped.setdefault(destination_id, target)

    for rule in config.rules:
        if not rule.matches(span):
            continue
        plan.matched.append(rule)
        for destination_id in rule.destinations:
            offer(destination_id, PRIMARY, rule)
        if rule.split is not None:
            offer(rule.split.choose(trace_fraction(trace_id, rule.id)), SPLIT, rule)
        for destination_id in rule.shadow:
            offer(destination_id, SHADOW, rule)
        if rule.stop:
            break
    if not plan.matched:
        for destination_id in config.default_destinations:
            offer(destination_id, DEFAULT, None)
    plan.targets = list(chosen.values())
    plan.dropped = list(dropped.values())
    return plan


def plan_spans(
    config: CompiledConfig,
    spans: list[dict[str, Any]],
    *,
    known_facts: dict[str, TraceFacts] | None = None,
    facts: dict[str, TraceFacts] | None = None,
    enabled: set[str] | None = None,
) -> list[SpanPlan]:
    """Plans for a batch. `known_facts` are the facts of each trace's spans stored
    in other batches, so a trace is judged as a whole (see sampling); `facts`
    replaces what the spans themselves tell (the whole trace is known)."""
    facts = dict(facts) if facts is not None else trace_facts(spans)
    if known_facts:
        for trace_id, earlier in known_facts.items():
            if trace_id in facts:
                facts[trace_id] = facts[trace_id].merge(earlier)
    return [
        plan_span(config, span, facts[span.get("trace_id") or span["id"]], enabled=enabled) for span in spans
    ]


def _sampling_record(target: Target) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sample_rate": round(target.decision.rate, 6),
        "sampled_by": target.decision.policy,
    }
    if target.rule is not None:
        record["rule"] = target.rule.name
    if target.role == SHADOW:
        record["shadow"] = True
    return record


def _add(report: TransformReport, more: TransformReport) -> None:
    report.redactions.update(more.redactions)
    report.truncated.extend(more.truncated)
    report.changed.extend(more.changed)


def _with_metadata(span: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A copy of the span whose metadata also holds `extra` (the original is shared, not changed)."""
    metadata = span.get("metadata")
    return {**span, "metadata": {**metadata, **extra} if isinstance(metadata, dict) else dict(extra)}


def render(
    config: CompiledConfig, plan: SpanPlan, target: Target, ctx: TransformContext
) -> tuple[dict[str, Any], TransformReport]:
    """The span as `target`'s destination receives it: project transformations,
    the owning rule's metadata and transformations, the destination's own, and
    `metadata.untrace` recording the sampling that let it through."""
    if plan.base is None:
        plan.base = (
            config.pipeline.apply(plan.span, ctx) if config.pipeline else (plan.span, TransformReport())
        )
    span, report = plan.base
    rule_pipeline = target.rule.pipeline if target.rule is not None else None
    destination_pipeline = config.policy(target.destination_id).pipeline
    if rule_pipeline or destination_pipeline:
        combined = TransformReport()
        _add(combined, report)
        report = combined
    if target.rule is not None and target.rule.metadata:
        span = _with_metadata(span, target.rule.metadata)
    for pipeline in (rule_pipeline, destination_pipeline):
        if pipeline:
            span, step_report = pipeline.apply(span, ctx)
            _add(report, step_report)
    return _with_metadata(span, {"untrace": _sampling_record(target)}), report
