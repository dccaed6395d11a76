"""The standard plans, as data. The seed migration writes them; `plan_get` also
restores a standard plan whose row is missing (a truncated table, a row deleted
in the admin), so billing never fails for want of a plan row."""

from __future__ import annotations

from apps.billing.models import Plan

# code: name, price in cents, traces a month, destinations, retention days, block ingest at percent
STANDARD_PLANS: dict[str, tuple[str, int | None, int | None, int | None, int | None, int | None]] = {
    "starter": ("Starter", 0, 100_000, 2, 7, 110),
    "growth": ("Growth", 9_900, 10_000_000, 5, 30, None),
    "scale": ("Scale", 49_900, 100_000_000, None, 90, None),
    "enterprise": ("Enterprise", None, None, None, None, None),
}
# code: requests a second per API key, burst. Enterprise: none unless set in the admin.
STANDARD_RATE_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "starter": (50, 100),
    "growth": (500, 1_000),
    "scale": (2_000, 4_000),
    "enterprise": (None, None),
}


def plan_get(code: str) -> Plan:
    plan = Plan.objects.filter(code=code).first()
    if plan is not None:
        return plan
    name, price, traces, destinations, retention, block = STANDARD_PLANS[code]
    rate, burst = STANDARD_RATE_LIMITS[code]
    plan, _ = Plan.objects.get_or_create(
        code=code,
        defaults={
            "name": name,
            "price_cents": price,
            "monthly_traces": traces,
            "max_destinations": destinations,
            "retention_days": retention,
            "block_at_percent": block,
            "rate_limit_per_second": rate,
            "rate_limit_burst": burst,
        },
    )
    return plan
