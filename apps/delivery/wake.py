"""Waking the deliver task of a destination, at most once per short window.

A Redis key per destination (SET NX with a TTL) keeps a burst of routed
batches from queueing a task each; the task clears it when it starts, so work
routed while it runs wakes another. If Redis or the broker is down nothing is
lost: the rows wait in PostgreSQL and the beat task wakes their destination.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

import redis
from django.conf import settings
from kombu.exceptions import KombuError

from apps.core.metrics import ENQUEUE_FAILURES
from apps.core.redis_cache import redis_client

logger = logging.getLogger(__name__)

KEY = "untrace:deliver:scheduled:{}"
WINDOW_MS = 2000


def wake(destination_ids: Iterable[str], *, countdown: float | None = None) -> int:
    """Enqueue the deliver task for each destination not already woken; returns how many."""
    from workers.tasks.delivery import deliver

    delay = settings.UNTRACE_DELIVERY_LINGER_SECONDS if countdown is None else countdown
    woken = 0
    for destination_id in destination_ids:
        try:
            if not redis_client().set(
                KEY.format(destination_id), 1, nx=True, px=WINDOW_MS + int(delay * 1000)
            ):
                continue
            deliver.apply_async(args=[destination_id], countdown=delay or None, retry=False)
            woken += 1
        except (redis.RedisError, KombuError, OSError) as exc:
            ENQUEUE_FAILURES.labels("deliver").inc()
            logger.warning("could not wake delivery to %s: %s", destination_id, exc)
    return woken


def woken(destination_id: str) -> None:
    """The task started: later work needs a new wake-up."""
    with contextlib.suppress(redis.RedisError):
        redis_client().delete(KEY.format(destination_id))
