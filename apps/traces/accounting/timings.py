"""Latency metrics from a call's timestamps (epoch milliseconds).

- ``latency_ms``: end - start.
- ``time_to_first_token_ms``: first token - start.
- ``time_per_output_token_ms``: the generation time after the first token
  (end - first token) divided by ``output_tokens - 1``, the tokens produced in it.
- ``tokens_per_second``: ``output_tokens`` over the whole latency (end-to-end
  throughput, defined with or without a first-token time).

A metric is None when an input is missing, the times are out of order, or the
division would be by zero; no metric is ever negative.
"""

import math
from dataclasses import dataclass

__all__ = ["Timings", "compute_timings"]


@dataclass(frozen=True)
class Timings:
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    time_per_output_token_ms: float | None = None
    tokens_per_second: float | None = None


def _time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _duration(start: float | None, end: float | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return end - start


def compute_timings(
    *,
    start_ms: float | None,
    end_ms: float | None,
    first_token_ms: float | None,
    output_tokens: int | None,
) -> Timings:
    start, end, first = _time(start_ms), _time(end_ms), _time(first_token_ms)
    tokens = output_tokens if isinstance(output_tokens, int) and not isinstance(output_tokens, bool) else None
    if tokens is not None and tokens < 0:
        tokens = None

    latency = _duration(start, end)
    ttft = _duration(start, first)
    if ttft is not None and end is not None and first > end:
        ttft = None
    generation = _duration(first, end) if ttft is not None else None

    tpot = None
    if generation is not None and tokens is not None and tokens > 1:
        tpot = generation / (tokens - 1)
    tps = None
    if latency and tokens is not None:
        tps = tokens * 1000 / latency
        if not math.isfinite(tps):  # a vanishing latency (e.g. 5e-324 ms) says nothing about speed
            tps = None
    return Timings(
        latency_ms=latency,
        time_to_first_token_ms=ttft,
        time_per_output_token_ms=tpot,
        tokens_per_second=tps,
    )
