"""The house task decorator: queue from the Enum, timing and outcome metrics, no results."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from apps.core.metrics import TASK_LATENCY, TASKS
from untrace.celery import app
from workers.queues import Queue


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
            try:
                result = func(*args, **kwargs)
                outcome = "ok"
                return result
            finally:
                TASKS.labels(name, outcome).inc()
                TASK_LATENCY.labels(name).observe(time.perf_counter() - started)

        return app.task(name=name, queue=queue.value, ignore_result=True, **options)(measured)

    return decorator
