"""Backpressure: when a project's backlog (spans stored but not yet routed, plus
spans waiting for delivery) passes UNTRACE_PROJECT_BACKLOG_LIMIT, ingest answers
429 with Retry-After instead of letting the backlog grow without bound.

The beat sweep measures backlogs in PostgreSQL and publishes the projects over
the limit in one Redis hash; each web process reads it at most every few
seconds, so the check on the request path is a dict lookup. If Redis cannot be
read, ingest accepts (the store is the safety net, not the cache).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter

import redis
from django.conf import settings
from django.db.models import Sum

from apps.core.redis_cache import CachedHash, redis_client
from apps.delivery.models import Delivery, DeliveryStatus
from apps.traces.models import IngestBatch

logger = logging.getLogger(__name__)

KEY = "untrace:backlogged-projects"
REFRESH_SECONDS = 2.0

_backlogs: CachedHash[int] = CachedHash(KEY, int, REFRESH_SECONDS)


def backlog_by_project() -> Counter[str]:
    """Spans per project not routed yet or waiting for delivery."""
    backlog: Counter[str] = Counter()
    for project_id, spans in (
        IngestBatch.objects.filter(routed_at__isnull=True)
        .values_list("project_id")
        .annotate(spans=Sum("span_count"))
    ):
        backlog[str(project_id)] += spans or 0
    for project_id, spans in (
        Delivery.objects.filter(status=DeliveryStatus.PENDING)
        .values_list("project_id")
        .annotate(spans=Sum("span_count"))
    ):
        backlog[str(project_id)] += spans or 0
    return backlog


def publish_backlog() -> dict[str, int]:
    """Measure and publish the projects over the limit; returns them."""
    limit = settings.UNTRACE_PROJECT_BACKLOG_LIMIT
    over = {project: spans for project, spans in backlog_by_project().items() if spans > limit}
    try:
        client = redis_client()
        with client.pipeline() as pipe:
            pipe.delete(KEY)
            if over:
                pipe.hset(KEY, mapping=over)
                pipe.expire(KEY, int(max(30, settings.UNTRACE_DELIVERY_SWEEP_SECONDS * 6)))
            pipe.execute()
    except redis.RedisError as exc:
        logger.warning("could not publish delivery backlogs: %s", exc)
    return over


def project_backlog(project_id: uuid.UUID | str) -> int | None:
    """The project's backlog when it is over the limit, else None (cached per process)."""
    return _backlogs.get(str(project_id))


def forget_cache() -> None:
    _backlogs.forget()
