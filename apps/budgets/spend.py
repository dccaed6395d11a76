"""The hot path of budgets: counting traced cost in Redis, and the proxy's hard-stop check.

Spend is counted in micro-dollars (integers) in one Redis hash per period
(`untrace:spend:YYYY-MM` and `untrace:spend:YYYY-MM-DD`), fields `p:<project id>`
and `k:<api key id>`. The increments ride in the pipeline of the usage counter
(`apps.billing.usage.usage_record`), so storing spans costs no extra round trip.
The evaluation task sets the fields of budgeted projects and keys to the exact
sum from the span table, so a lost increment (Redis down) lasts one run.

`budget_block` reads the hard-stop budgets the evaluation task found spent from
one Redis hash (`untrace:budget-exhausted`, fields `p:<project id>` and
`k:<key id>`), at most every REFRESH_SECONDS per process: a dict lookup on the
proxy's request path, no database query. If Redis cannot be read, calls go through.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import redis
from django.conf import settings

from apps.budgets.periods import MONTHLY, PERIODS, Window, window_of
from apps.core.redis_cache import CachedHash

logger = logging.getLogger(__name__)

SPEND_KEY = "untrace:spend:{label}"
EXHAUSTED_KEY = "untrace:budget-exhausted"
REFRESH_SECONDS = 3.0
MICROS = 1_000_000
_TTL = {MONTHLY: 40 * 86400}
_DAILY_TTL = 3 * 86400


def spend_key(window: Window) -> str:
    return SPEND_KEY.format(label=window.label)


def project_field(project_id: uuid.UUID | str) -> str:
    return f"p:{project_id}"


def key_field(key_id: uuid.UUID | str) -> str:
    return f"k:{key_id}"


def to_micros(usd: float | Decimal | None) -> int:
    if not usd:
        return 0
    return round(Decimal(str(usd)) * MICROS)


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class SpendIncrement:
    """Cost newly stored for a project, and the key that sent it (None for signed webhooks)."""

    project_id: uuid.UUID | str
    api_key_id: uuid.UUID | str | None
    micros: int

    def add_to(self, pipe: Any, moment: datetime | None = None) -> None:
        """Queue the increments on a Redis pipeline (every period kind, project and key)."""
        for period in PERIODS:
            key = spend_key(window_of(period, moment))
            pipe.hincrby(key, project_field(self.project_id), self.micros)
            if self.api_key_id:
                pipe.hincrby(key, key_field(self.api_key_id), self.micros)
            pipe.expire(key, _TTL.get(period, _DAILY_TTL))


def spend_increment(
    project_id: uuid.UUID | str, api_key_id: uuid.UUID | str | None, cost_usd: float | Decimal
) -> SpendIncrement | None:
    """What to add for spans of this cost, or None when they cost nothing."""
    micros = to_micros(cost_usd)
    return SpendIncrement(project_id, api_key_id, micros) if micros > 0 else None


def spend_counted(window: Window, fields: list[str], client: redis.Redis) -> dict[str, int]:
    """The live counters of `fields` for the window (raises RedisError)."""
    if not fields:
        return {}
    values = client.hmget(spend_key(window), fields)
    return {field: int(value or 0) for field, value in zip(fields, values, strict=True)}


def spend_set(window: Window, exact: dict[str, int], client: redis.Redis) -> None:
    """Overwrite counters with the exact figures from the span table (raises RedisError)."""
    if not exact:
        return
    key = spend_key(window)
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping=exact)
        pipe.expire(key, _TTL.get(window.period, _DAILY_TTL))
        pipe.execute()


# --- hard stop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exhausted:
    """A spent hard-stop budget, as the proxy reads it."""

    budget_id: str
    name: str
    amount_usd: str
    period: str
    resets_at: float  # epoch seconds (UTC) when the period ends
    scope: str  # "project" or "key"

    def to_json(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @property
    def resets_at_text(self) -> str:
        return datetime.fromtimestamp(self.resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def retry_after(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.resets_at - (time.time() if now is None else now)))

    def message(self) -> str:
        whose = "of this API key" if self.scope == "key" else "of this project"
        return (
            f'The {self.period} budget "{self.name}" {whose} (${self.amount_usd}) is spent; '
            f"proxied LLM calls are refused until it resets at {self.resets_at_text}."
        )

    def details(self) -> dict[str, Any]:
        return {
            "budget_id": self.budget_id,
            "budget": self.name,
            "amount_usd": self.amount_usd,
            "period": self.period,
            "resets_at": self.resets_at_text,
        }


def _decode(raw: bytes) -> Exhausted:
    return Exhausted(**orjson.loads(raw))


_exhausted: CachedHash[Exhausted] = CachedHash(
    EXHAUSTED_KEY, _decode, REFRESH_SECONDS, client=lambda: _fast_client()
)


def _fast_client() -> redis.Redis:
    from apps.billing.usage import _redis  # the short-timeout client of the hot path

    return _redis()


def budget_block(
    project_id: uuid.UUID | str, key_id: uuid.UUID | str | None, now: float | None = None
) -> Exhausted | None:
    """The spent hard-stop budget that refuses this call, or None (cached per process).
    An entry whose period has ended no longer blocks, even before the next evaluation."""
    now = time.time() if now is None else now
    for field in (project_field(project_id), key_field(key_id) if key_id else None):
        if field is None:
            continue
        found = _exhausted.get(field)
        if found is not None and found.resets_at > now:
            return found
    return None


def exhausted_publish(entries: dict[str, Exhausted], client: redis.Redis) -> None:
    """Replace the set of spent hard-stop budgets (raises RedisError)."""
    with client.pipeline() as pipe:
        pipe.delete(EXHAUSTED_KEY)
        if entries:
            pipe.hset(EXHAUSTED_KEY, mapping={field: e.to_json() for field, e in entries.items()})
            pipe.expire(EXHAUSTED_KEY, int(max(600, settings.UNTRACE_BUDGET_CHECK_SECONDS * 10)))
        pipe.execute()
    _exhausted.forget()


def exhausted_drop(budget_id: uuid.UUID | str, client: redis.Redis) -> None:
    """Stop refusing calls for a budget at once (changed or deleted); never raises."""
    try:
        raw = client.hgetall(EXHAUSTED_KEY)
        stale = [field for field, value in raw.items() if _decode(value).budget_id == str(budget_id)]
        if stale:
            client.hdel(EXHAUSTED_KEY, *stale)
    except (redis.RedisError, ValueError, TypeError) as exc:
        logger.warning("could not lift the hard stop of budget %s: %s", budget_id, exc)
    _exhausted.forget()


def forget_cache() -> None:
    _exhausted.forget()
