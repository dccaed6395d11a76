"""A circuit breaker per upstream base URL, in the web process.

The proxy's breaker is local (no Redis round trip on the request path): after
UNTRACE_PROXY_CIRCUIT_FAILURES consecutive failures of an upstream (it could
not be reached, timed out, or answered 5xx after the retries) calls skip it for
UNTRACE_PROXY_CIRCUIT_RESET_SECONDS and go to the next upstream in the list;
then one call is let through as a trial. With no other upstream left, an open
upstream is still tried: a slim chance beats a certain error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from apps.core.metrics import PROXY_CIRCUIT


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False


_states: dict[str, _State] = {}


def available(base: str) -> bool:
    """Whether calls may go to this upstream now (closed, or due for a trial)."""
    state = _states.get(base)
    if state is None or state.opened_at is None:
        return True
    if time.monotonic() - state.opened_at >= settings.UNTRACE_PROXY_CIRCUIT_RESET_SECONDS and not state.trial:
        state.trial = True  # half-open: this caller is the trial
        return True
    return False


def succeeded(base: str) -> None:
    state = _states.get(base)
    if state is not None and (state.failures or state.opened_at is not None):
        if state.opened_at is not None:
            PROXY_CIRCUIT.labels("closed").inc()
        _states[base] = _State()


def failed(base: str) -> None:
    state = _states.setdefault(base, _State())
    state.failures += 1
    if state.trial or (state.opened_at is None and state.failures >= settings.UNTRACE_PROXY_CIRCUIT_FAILURES):
        state.opened_at = time.monotonic()
        state.trial = False
        PROXY_CIRCUIT.labels("opened").inc()


def state_of(base: str) -> str:
    state = _states.get(base)
    if state is None or state.opened_at is None:
        return "closed"
    return "half-open" if state.trial else "open"


def reset() -> None:
    _states.clear()
