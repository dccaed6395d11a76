"""Rate limits of API keys (ingest, the proxy, the API) and of failed key checks per IP.

A key's limit is its organization's plan's (`Plan.rate_limit_per_second` and
`rate_limit_burst`; the default plan's when the organization has no billing row
yet), lowered by the key's own `rate_limit_per_second` / `rate_limit_burst`: a
key can be limited more tightly than its plan, never more loosely. It is read
with the key row, in the same query, and cached with it (`apps.keys.cache`), so
a warm check costs exactly one Redis round trip (the token bucket) and a plan
change reaches every process within UNTRACE_KEY_CACHE_SECONDS.

Failed key checks (a key was sent and refused with 401) take a token from the
caller's IP bucket (UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP); once it is empty
the refusals answer 429 instead of 401. Valid keys never touch that bucket.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Case, F, Subquery, When

from apps.billing.models import Plan
from apps.core import ratelimit
from apps.core.ratelimit import Decision, Limit

KEY = "key"
AUTH_FAILURES = "auth_failures_ip"
_BILLING = "project__organization__billing"


def plan_limit_annotations() -> dict[str, Any]:
    """Annotations of an ApiKey queryset: the rate and burst of its organization's plan."""
    default = Plan.objects.filter(code=settings.UNTRACE_DEFAULT_PLAN)

    def of_plan(field: str) -> Case:
        return Case(
            When(**{f"{_BILLING}__isnull": True}, then=Subquery(default.values(field)[:1])),
            default=F(f"{_BILLING}__plan__{field}"),
        )

    return {"plan_rate": of_plan("rate_limit_per_second"), "plan_burst": of_plan("rate_limit_burst")}


def _lowest(*values: int | None) -> int | None:
    given = [v for v in values if v is not None]
    return min(given) if given else None


def key_limit(
    *, key_rate: int | None, key_burst: int | None, plan_rate: int | None, plan_burst: int | None
) -> Limit | None:
    """The limit a key runs under; None: unlimited (a plan without a rate and a key without
    its own). A missing burst is twice the rate; a burst without any rate refills a burst a second."""
    rate = _lowest(key_rate, plan_rate)
    burst = _lowest(key_burst, plan_burst)
    if rate is None and burst is None:
        return None
    if rate is None:
        rate = burst
    if burst is None:
        burst = 2 * rate
    return Limit(rate=float(rate), burst=burst)


def key_refusal(decision: Decision) -> tuple[int, dict, dict[str, str]]:
    return ratelimit.refusal(decision, "This key", KEY)


def _active(limit: Limit | None) -> bool:
    return limit is not None and settings.UNTRACE_RATE_LIMITS_ENABLED


def key_take(principal: Any) -> Decision | None:
    """Take a token for the key; None: not limited, or Redis unreachable (allowed)."""
    if not _active(principal.rate_limit):
        return None
    return ratelimit.take(KEY, str(principal.key_id), principal.rate_limit)


async def key_take_async(principal: Any) -> Decision | None:
    if not _active(principal.rate_limit):
        return None
    return await ratelimit.take_async(KEY, str(principal.key_id), principal.rate_limit)


def auth_failure_take(ip: str | None) -> Decision | None:
    """Count a refused key from `ip`; a refused Decision means: answer 429, not 401."""
    return ratelimit.ip_take(AUTH_FAILURES, "UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP", ip)


async def auth_failure_take_async(ip: str | None) -> Decision | None:
    limit = ratelimit.ip_limit("UNTRACE_RATE_LIMIT_AUTH_FAILURES_PER_IP")
    if limit is None or not ip:
        return None
    return await ratelimit.take_async(AUTH_FAILURES, ratelimit.ip_bucket(ip), limit)
