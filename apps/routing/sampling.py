"""Trace-consistent, LLM-aware sampling.

Every trace gets one number `u` in [0, 1) from a hash of its id, the same in
every worker, batch and project. A policy turns what is known of the trace
(any error, slowest span, total cost) into a keep probability `p`; the trace is
kept when `u < p`. So:

- all spans of a trace get the same decision, whichever batch brings them;
- policies at several levels (project, rule, destination) nest: a span goes to
  a destination when `u` is below every level's `p`, so the effective rate is
  the smallest one, and a trace kept at 10 % is also in every 50 % sample;
- `p` only grows as more of a trace arrives (an error, a slow or costly span),
  so a decision can turn from drop to keep but never back: the router then
  sends the trace's earlier spans too (see `apps.routing.router`).

Policy JSON: `{"rate": 0.1, "keep_errors": true, "latency_threshold_ms": 5000,
"cost_threshold": 0.05}`. Errors (default on) and spans at or above the latency
threshold are always kept. At or above the cost threshold a trace is always
kept; below it the keep probability grows linearly from `rate` to 1 with cost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from apps.routing.errors import ConfigError

MIN_RATE = 0.001
_SCALE = float(1 << 64)


def trace_fraction(trace_id: str, salt: str = "") -> float:
    """A uniform, stable number in [0, 1) for a trace (and an optional salt)."""
    digest = hashlib.blake2b(f"{salt}\x00{trace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, slots=True)
class TraceFacts:
    """What sampling may know about a whole trace."""

    has_error: bool = False
    max_latency_ms: float = 0.0
    total_cost: float = 0.0

    def merge(self, other: TraceFacts) -> TraceFacts:
        return TraceFacts(
            self.has_error or other.has_error,
            max(self.max_latency_ms, other.max_latency_ms),
            self.total_cost + other.total_cost,
        )


def span_facts(span: dict[str, Any]) -> TraceFacts:
    metrics = span.get("metrics") or {}
    latency = metrics.get("latency_ms")
    cost = metrics.get("estimated_cost")
    return TraceFacts(
        has_error=bool(span.get("error")) or span.get("status") == "error",
        max_latency_ms=float(latency) if isinstance(latency, (int, float)) else 0.0,
        total_cost=float(cost) if isinstance(cost, (int, float)) else 0.0,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    keep: bool
    rate: float  # the probability the trace had of being kept
    policy: str  # why: "rate", "error", "latency", "cost", or "no_sampling"


KEEP_ALL = Decision(True, 1.0, "no_sampling")


@dataclass(frozen=True, slots=True)
class Sampler:
    rate: float = 1.0
    keep_errors: bool = True
    latency_threshold_ms: float | None = None
    cost_threshold: float | None = None

    @property
    def uses_facts(self) -> bool:
        """Whether the decision depends on more than the trace id."""
        return self.rate < 1.0 and (
            self.keep_errors or self.latency_threshold_ms is not None or self.cost_threshold is not None
        )

    def decide(self, u: float, facts: TraceFacts) -> Decision:
        if self.rate >= 1.0:
            return Decision(True, 1.0, "rate")
        if self.keep_errors and facts.has_error:
            return Decision(True, 1.0, "error")
        if self.latency_threshold_ms is not None and facts.max_latency_ms >= self.latency_threshold_ms:
            return Decision(True, 1.0, "latency")
        p = self.rate
        policy = "rate"
        if self.cost_threshold is not None and facts.total_cost > 0:
            if facts.total_cost >= self.cost_threshold:
                return Decision(True, 1.0, "cost")
            p = self.rate + (1.0 - self.rate) * facts.total_cost / self.cost_threshold
            policy = "cost"
        return Decision(u < p, p, policy)


_KEYS = {"rate", "keep_errors", "latency_threshold_ms", "cost_threshold"}


def _number(spec: dict[str, Any], key: str, where: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key}", "must be a number")
    if value <= 0:
        raise ConfigError(f"{where}.{key}", "must be greater than 0")
    return float(value)


def compile_sampler(spec: Any, *, where: str) -> Sampler | None:
    """A Sampler from policy JSON; None (no sampling) for null."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(where, 'must be an object such as {"rate": 0.1}')
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}", f"is not a sampling setting; known: {', '.join(sorted(_KEYS))}"
        )
    rate = spec.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not MIN_RATE <= rate <= 1.0:
        raise ConfigError(f"{where}.rate", f"must be a number from {MIN_RATE} (0.1 %) to 1 (100 %)")
    keep_errors = spec.get("keep_errors", True)
    if not isinstance(keep_errors, bool):
        raise ConfigError(f"{where}.keep_errors", "must be true or false")
    return Sampler(
        rate=float(rate),
        keep_errors=keep_errors,
        latency_threshold_ms=_number(spec, "latency_threshold_ms", where),
        cost_threshold=_number(spec, "cost_threshold", where),
    )


def decide_all(samplers: tuple[Sampler, ...], u: float, facts: TraceFacts) -> Decision:
    """The nested decision of several levels: kept only if every level keeps it.
    The reported rate is the smallest level's; the policy is the one that decided."""
    result = KEEP_ALL
    for sampler in samplers:
        decision = sampler.decide(u, facts)
        if not decision.keep:
            return decision
        if decision.rate <= result.rate:
            result = decision
    return result
