"""The hot path of billing: counting accepted spans, and the quota check of ingest.

`usage_record` adds to one Redis hash per calendar month (UTC), field = the
organization id: one pipelined round trip (HINCRBY + EXPIRE). Failures are
ignored (ingest never waits on billing); after one, Redis is left alone for a
few seconds so an outage costs no latency. What is lost is found again by the
hourly reconciliation from the span table.

`quota_exceeded` reads the organizations whose ingest is paused (published by
the per-minute usage task) from one Redis hash, at most every
REFRESH_SECONDS per process, so the check on the request path is a dict lookup.
If Redis cannot be read, ingest accepts.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import orjson
import redis
from django.conf import settings

from apps.budgets.spend import SpendIncrement
from apps.core.redis_cache import CachedHash

logger = logging.getLogger(__name__)

USAGE_KEY = "untrace:usage:{month}"  # month as YYYY-MM
USAGE_TTL_SECONDS = 40 * 86400
EXCEEDED_KEY = "untrace:quota-exceeded"
REFRESH_SECONDS = 3.0
FAILURE_PAUSE_SECONDS = 5.0

_paused_until = 0.0


@functools.cache
def _redis() -> redis.Redis:
    # Short timeouts: the counter sits on the ingest path.
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.25, socket_timeout=0.25)


def month_start(moment: datetime | None = None) -> date:
    moment = moment or datetime.now(UTC)
    return date(moment.year, moment.month, 1)


def usage_key(month: date) -> str:
    return USAGE_KEY.format(month=month.strftime("%Y-%m"))


def usage_record(organization_id: uuid.UUID | str, spans: int, spend: SpendIncrement | None = None) -> None:
    """Count `spans` newly stored spans for the organization this month, and their traced
    cost for budgets (`spend`, in the same pipeline). Never raises."""
    global _paused_until
    if spans <= 0 or time.monotonic() < _paused_until:
        return
    key = usage_key(month_start())
    try:
        with _redis().pipeline(transaction=False) as pipe:
            pipe.hincrby(key, str(organization_id), spans)
            pipe.expire(key, USAGE_TTL_SECONDS)
            if spend is not None:
                spend.add_to(pipe)
            pipe.execute()
    except redis.RedisError as exc:
        _paused_until = time.monotonic() + FAILURE_PAUSE_SECONDS
        logger.warning("could not count %d spans of organization %s: %s", spans, organization_id, exc)


def usage_counted(month: date) -> dict[str, int]:
    """Every organization's count for `month` in Redis (raises RedisError)."""
    raw = _redis().hgetall(usage_key(month))
    return {k.decode(): int(v) for k, v in raw.items()}


@dataclass(frozen=True)
class Exceeded:
    plan: str
    limit: int
    used: int


def exceeded_publish(exceeded: dict[str, Exceeded]) -> None:
    """Replace the set of organizations whose ingest is paused (raises RedisError)."""
    with _redis().pipeline() as pipe:
        pipe.delete(EXCEEDED_KEY)
        if exceeded:
            pipe.hset(
                EXCEEDED_KEY,
                mapping={
                    org: orjson.dumps({"plan": e.plan, "limit": e.limit, "used": e.used})
                    for org, e in exceeded.items()
                },
            )
            pipe.expire(EXCEEDED_KEY, int(max(600, settings.UNTRACE_USAGE_FLUSH_SECONDS * 10)))
        pipe.execute()
    _exceeded.forget()  # this process sees the new set at once; the others within REFRESH_SECONDS


def exceeded_clear(organization_id: uuid.UUID | str) -> None:
    """Resume an organization's ingest at once (after an upgrade); never raises."""
    try:
        _redis().hdel(EXCEEDED_KEY, str(organization_id))
    except redis.RedisError as exc:
        logger.warning("could not resume ingest of organization %s: %s", organization_id, exc)
    forget_cache()


_exceeded: CachedHash[Exceeded] = CachedHash(
    EXCEEDED_KEY, lambda raw: Exceeded(**orjson.loads(raw)), REFRESH_SECONDS, client=lambda: _redis()
)


def quota_exceeded(organization_id: uuid.UUID | str) -> Exceeded | None:
    """Why the organization's ingest is paused, or None (cached per process)."""
    return _exceeded.get(str(organization_id))


def forget_cache() -> None:
    global _paused_until
    _exceeded.forget()
    _paused_until = 0.0
