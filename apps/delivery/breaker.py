"""One circuit breaker per destination, shared by every worker through Redis
(pybreaker's Redis storage): after UNTRACE_CIRCUIT_FAILURES consecutive
failures it opens, nothing is sent for UNTRACE_CIRCUIT_RESET_SECONDS, then one
trial request (half-open) closes it again or re-opens it. If Redis is
unreachable the breaker reads as closed: deliveries go on."""

from __future__ import annotations

import functools
import uuid

import pybreaker
import redis
from django.conf import settings

from apps.core.redis_cache import redis_client

NAMESPACE = "untrace:circuit"


class DeliveryFailed(Exception):
    """A retryable failure, raised inside the breaker so it counts."""


class _RecoveryListener(pybreaker.CircuitBreakerListener):
    """When a destination's circuit closes again, dead letters that died of
    retryable failures (its outage outlasted the retry window) are replayed."""

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state, new_state) -> None:
        if (
            new_state.name == pybreaker.STATE_CLOSED
            and old_state
            and old_state.name == pybreaker.STATE_HALF_OPEN
        ):
            from apps.delivery.services import replay_after_recovery

            replay_after_recovery(cb.name)


@functools.cache
def breaker_for(destination_id: uuid.UUID | str) -> pybreaker.CircuitBreaker:
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis_client(), namespace=f"{NAMESPACE}:{destination_id}"
    )
    return pybreaker.CircuitBreaker(
        fail_max=settings.UNTRACE_CIRCUIT_FAILURES,
        reset_timeout=settings.UNTRACE_CIRCUIT_RESET_SECONDS,
        state_storage=storage,
        name=str(destination_id),
        listeners=[_RecoveryListener()] if settings.UNTRACE_DELIVERY_REPLAY_ON_RECOVERY else [],
    )


def circuit_state(destination_id: uuid.UUID | str) -> str:
    """closed, open or half-open."""
    try:
        return breaker_for(str(destination_id)).current_state
    except redis.RedisError:
        return pybreaker.STATE_CLOSED


def reset_breakers() -> None:
    """Forget the process's breakers (tests; settings changes)."""
    breaker_for.cache_clear()
