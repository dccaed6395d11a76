"""Token buckets in Redis: one round trip per request, failing open.

A bucket holds up to `burst` tokens and gains `rate` tokens a second; a request
takes one, and is refused when none is left. The state is a Redis hash (`tokens`,
`at`) updated by one Lua script run with EVALSHA (redis-py's `Script` loads it
again after a Redis restart). The caller passes the current time, so every
process of a deployment shares one bucket per name and tests can move the clock;
a process whose clock is behind the last writer's gets no refill until it catches
up, never a negative one.

If Redis cannot be reached the request is allowed (`untrace_rate_limit_fail_open_total`)
and Redis is left alone for FAILURE_PAUSE_SECONDS, so an outage adds no latency to
ingest or the proxy.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import time
import weakref
from dataclasses import dataclass

import redis
import redis.asyncio
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse

from apps.core.errors import error_body
from apps.core.metrics import RATE_LIMIT_FAIL_OPEN, RATE_LIMITED
from apps.core.redis_cache import redis_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "untrace:rl:"
FAILURE_PAUSE_SECONDS = 5.0

# KEYS[1]: the bucket. ARGV: rate (tokens a second), burst (capacity), now (epoch seconds).
# Returns {allowed (0/1), whole tokens left, ms until full, ms until one token (0 if allowed)}.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local allowed = 0
-- A microsecond of refill in hand: epoch seconds in a double are exact to about 0.25 us.
if tokens >= 1 - rate * 1e-6 then
  tokens = math.max(0, tokens - 1)
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
local full_ms = math.ceil((burst - tokens) * 1000 / rate)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
local retry_ms = 0
if allowed == 0 then
  retry_ms = math.ceil((1 - tokens) * 1000 / rate)
end
return {allowed, math.floor(tokens), full_ms, retry_ms}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """`rate` requests a second on average, `burst` at once."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError(f"a rate limit needs a positive rate and a burst of at least 1, not {self}")

    @property
    def per_minute(self) -> float:
        return self.rate * 60


_PERIODS = {"s": 1, "m": 60, "h": 3600}


def parse_limit(text: str, *, setting: str = "") -> Limit | None:
    """`COUNT/PERIOD` (`s`, `m` or `h`): a bucket of COUNT refilled over PERIOD; `off` or
    an empty value: no limit."""
    text = text.strip().lower()
    if text in ("", "off", "none"):
        return None
    count, _, period = text.partition("/")
    try:
        amount = int(count)
        seconds = _PERIODS[period]
        return Limit(rate=amount / seconds, burst=amount)
    except (KeyError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"{setting or 'rate limit'}: {text!r} is not COUNT/s, COUNT/m or COUNT/h"
        ) from exc


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: Limit
    remaining: int
    reset: int  # whole seconds until the bucket is full again
    retry_after: int  # whole seconds until a refused request may succeed (0 when allowed)

    def headers(self) -> dict[str, str]:
        """X-RateLimit-* (and Retry-After when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit.burst),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def now() -> float:
    """The clock the buckets are read with (tests replace it)."""
    return time.time()


_paused_until = 0.0


def _decision(raw: list, limit: Limit) -> Decision:
    allowed, remaining, full_ms, retry_ms = (int(v) for v in raw)
    return Decision(
        allowed=bool(allowed),
        limit=limit,
        remaining=max(0, remaining),
        reset=math.ceil(full_ms / 1000),
        retry_after=max(1, math.ceil(retry_ms / 1000)) if not allowed else 0,
    )


def _args(limit: Limit, at: float | None) -> list:
    return [repr(float(limit.rate)), limit.burst, repr(now() if at is None else at)]


def _failed(name: str, exc: Exception) -> None:
    global _paused_until
    _paused_until = time.monotonic() + FAILURE_PAUSE_SECONDS
    RATE_LIMIT_FAIL_OPEN.labels(name).inc()
    logger.warning("rate limit %s not checked, request allowed: %s", name, exc)


def _paused(name: str) -> bool:
    if time.monotonic() < _paused_until:
        RATE_LIMIT_FAIL_OPEN.labels(name).inc()
        return True
    return False


def _counted(decision: Decision, name: str) -> Decision:
    if not decision.allowed:
        RATE_LIMITED.labels(name).inc()
    return decision


_script = None


def _sync_script():
    global _script
    if _script is None:
        _script = redis_client().register_script(TOKEN_BUCKET_LUA)
    return _script


def take(name: str, bucket: str, limit: Limit, *, at: float | None = None) -> Decision | None:
    """Take one token from the bucket `name:bucket`; None when Redis could not be asked
    (the caller allows the request). `name` is the kind of limit, for metrics."""
    if _paused(name):
        return None
    try:
        raw = _sync_script()(
            keys=[f"{KEY_PREFIX}{name}:{bucket}"], args=_args(limit, at), client=redis_client()
        )
    except (redis.RedisError, OSError) as exc:
        _failed(name, exc)
        return None
    return _counted(_decision(raw, limit), name)


# One asyncio client (and its script) per event loop: a connection belongs to the loop that opened it.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_script():
    loop = asyncio.get_running_loop()
    script = _async_clients.get(loop)
    if script is None:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
        script = _async_clients[loop] = client.register_script(TOKEN_BUCKET_LUA)
    return script


async def take_async(name: str, bucket: str, limit: Limit, *, at: float | None = None) -> Decision | None:
    """`take` for the event loop (the proxy)."""
    if _paused(name):
        return None
    try:
        raw = await _async_script()(keys=[f"{KEY_PREFIX}{name}:{bucket}"], args=_args(limit, at))
    except (redis.RedisError, OSError) as exc:
        _failed(name, exc)
        return None
    return _counted(_decision(raw, limit), name)


def _count(value: float, unit: str) -> str:
    return f"{value:g} {unit}" + ("" if value == 1 else "s")


def describe(limit: Limit) -> str:
    """`50 requests per second with a burst of 100`, `10 requests per minute`."""
    if limit.rate >= 1:
        return f"{_count(limit.rate, 'request')} per second with a burst of {limit.burst}"
    if limit.per_minute >= 1:
        return f"{_count(limit.per_minute, 'request')} per minute"
    return f"{_count(limit.rate * 3600, 'request')} per hour"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 6)


def refusal(decision: Decision, subject: str, name: str) -> tuple[int, dict, dict[str, str]]:
    """The 429 answer: (status, error envelope, headers)."""
    limit = decision.limit
    body = error_body(
        "rate_limited",
        f"{subject} is limited to {describe(limit)}; retry in {decision.retry_after} s.",
        {
            "limit": name,
            "rate_per_second": _number(limit.rate),
            "burst": limit.burst,
            "retry_after": decision.retry_after,
        },
    )
    return 429, body, decision.headers()


def ip_refusal(decision: Decision, name: str) -> tuple[int, dict, dict[str, str]]:
    return refusal(decision, "This address", name)


@functools.lru_cache(maxsize=16)
def _setting_limit(setting: str, value: str) -> Limit | None:
    return parse_limit(value, setting=setting)


def ip_limit(setting: str) -> Limit | None:
    """The per-IP limit a setting names (COUNT/PERIOD), None when off."""
    return _setting_limit(setting, getattr(settings, setting))


def ip_bucket(ip: str) -> str:
    """The bucket of an address: itself, or its /64 for IPv6 (one host can hold a whole /64)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def ip_take(name: str, setting: str, ip: str | None) -> Decision | None:
    """Take a token from the IP's bucket of the limit `setting`; None: not limited or allowed
    without a check."""
    limit = ip_limit(setting)
    if limit is None or not ip:
        return None
    return take(name, ip_bucket(ip), limit)


def ip_refused_response(name: str, setting: str, ip: str | None) -> JsonResponse | None:
    """For a Django view: the 429 answer when the IP's bucket of `setting` is empty, else None."""
    decision = ip_take(name, setting, ip)
    if decision is None or decision.allowed:
        return None
    status, body, headers = ip_refusal(decision, name)
    response = JsonResponse(body, status=status)
    for header, value in headers.items():
        response[header] = value
    return response


def reset_state() -> None:
    """Forget the clients and any failure pause (after REDIS_URL changes; tests)."""
    global _paused_until, _script
    _paused_until = 0.0
    _script = None
    _async_clients.clear()
