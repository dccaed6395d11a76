"""The house task decorator: queue from the Enum, timing and outcome metrics, no results."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import current_task
from django.conf import settings

from apps.core.metrics import TASK_LATENCY, TASKS
from apps.core.redis_cache import redis_client
from untrace.celery import app
from workers.queues import Queue

logger = logging.getLogger(__name__)


def _redelivered_too_often(name: str) -> bool:
    """Count runs per message (Redis); a message that keeps coming back because
    its worker dies under it stops after UNTRACE_TASK_MAX_DELIVERIES runs."""
    task_id = getattr(getattr(current_task, "request", None), "id", None)
    if not task_id:  # called directly, not from a message
        return False
    try:
        key = f"untrace:task-runs:{task_id}"
        client = redis_client()
        runs = client.incr(key)
        client.expire(key, 86400)
    except redis.RedisError:
        return False
    if runs > settings.UNTRACE_TASK_MAX_DELIVERIES:
        logger.error("task %s (%s) was delivered %d times; dropping the message", name, task_id, runs)
        return True
    return False


def untrace_task(*, queue: Queue, **options: Any) -> Callable:
    """Register a Celery task on `queue`, measured in untrace_celery_task_* metrics.

    Retries are the task's own business: pass `autoretry_for` only with
    exception types that are worth retrying, never `Exception`.
    """

    def decorator(func: Callable) -> Any:
        name = f"{func.__module__}.{func.__name__}"

        @functools.wraps(func)
        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = "error"
            if _redelivered_too_often(name):
                TASKS.labels(name, "poison").inc()
                return None
            try:
                result = func(*args, **kwargs)
                outcome = "ok"
                return result
            finally:
                TASKS.labels(name, outcome).inc()
                TASK_LATENCY.labels(name).observe(time.perf_counter() - started)

        return app.task(name=name, queue=queue.value, ignore_result=True, **options)(measured)

    return decorator
