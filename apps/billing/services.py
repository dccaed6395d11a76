"""Billing rows, usage persistence and reconciliation, quota warnings, plan limits."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count
from django.db.models.functions import Greatest

from apps.accounts.models import Membership, Organization, Project, Role
from apps.billing.models import Subscription, UsageCounter
from apps.billing.plans import plan_get
from apps.billing.usage import (
    Exceeded,
    exceeded_publish,
    month_start,
    usage_counted,
    usage_key,
)
from apps.core.errors import ApiError

logger = logging.getLogger(__name__)
WARN_PERCENTS = (80, 100)


def month_end(month: date) -> date:
    """The first day of the next month."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def at_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def subscription_for(organization_id: uuid.UUID | str, *, lock: bool = False) -> Subscription:
    """The organization's billing row, created on UNTRACE_DEFAULT_PLAN (starter) when it has none."""
    queryset = Subscription.objects.select_related("plan", "organization")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    subscription = queryset.filter(organization_id=organization_id).first()
    if subscription is None:
        default = plan_get(settings.UNTRACE_DEFAULT_PLAN)
        Subscription.objects.get_or_create(organization_id=organization_id, defaults={"plan": default})
        subscription = queryset.get(organization_id=organization_id)
    return subscription


# --- usage -------------------------------------------------------------------


def usage_persist(now: datetime | None = None) -> int:
    """Write the counts kept in Redis for this month (and last month, until its last
    increments are in) to PostgreSQL; a count never goes down. Returns the rows written."""
    now = now or datetime.now(UTC)
    this_month = month_start(now)
    months = [this_month]
    if now.day == 1:
        months.append(month_start(at_midnight(this_month) - timedelta(days=1)))
    written = 0
    for month in months:
        counts = usage_counted(month)
        known = set(
            Organization.objects.filter(id__in=[_uuid(org) for org in counts if _uuid(org)]).values_list(
                "id", flat=True
            )
        )
        for org, traces in counts.items():
            org_id = _uuid(org)
            if org_id is None or org_id not in known:
                continue
            _counter_raise(org_id, month, traces)
            written += 1
    return written


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _counter_raise(organization_id: uuid.UUID, month: date, traces: int) -> None:
    updated = UsageCounter.objects.filter(organization_id=organization_id, month=month).update(
        traces=Greatest("traces", traces)
    )
    if not updated:
        counter, created = UsageCounter.objects.get_or_create(
            organization_id=organization_id, month=month, defaults={"traces": traces}
        )
        if not created:
            UsageCounter.objects.filter(pk=counter.pk).update(traces=Greatest("traces", traces))


def usage_reconcile(month: date | None = None) -> dict[str, int]:
    """Count the month's stored spans per organization in the span table and raise
    counters (PostgreSQL and Redis) that missed increments (Redis down, a lost write)."""
    from apps.traces.models import Span  # the store's model; billing only reads it

    month = month or month_start()
    start, end = at_midnight(month), at_midnight(month_end(month))
    exact = dict(
        Span.objects.filter(received_at__gte=start, received_at__lt=end)
        .values_list("project__organization_id")
        .annotate(n=Count("id"))
        .values_list("project__organization_id", "n")
    )
    try:
        counted = usage_counted(month)
    except redis.RedisError:
        counted = None
    raised: dict[str, int] = {}
    for org_id, traces in exact.items():
        _counter_raise(org_id, month, traces)
        if counted is not None:
            missing = traces - counted.get(str(org_id), 0)
            if missing > 0:
                raised[str(org_id)] = missing
    if raised:
        try:
            from apps.billing.usage import _redis

            with _redis().pipeline(transaction=False) as pipe:
                for org, missing in raised.items():
                    pipe.hincrby(usage_key(month), org, missing)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("could not correct usage counts in Redis: %s", exc)
    return raised


def usage_this_month(organization_id: uuid.UUID | str) -> int:
    """Spans accepted this month: the live Redis count, or PostgreSQL's if that is higher."""
    month = month_start()
    stored = (
        UsageCounter.objects.filter(organization_id=organization_id, month=month)
        .values_list("traces", flat=True)
        .first()
        or 0
    )
    try:
        from apps.billing.usage import _redis

        live = int(_redis().hget(usage_key(month), str(organization_id)) or 0)
    except redis.RedisError:
        live = 0
    return max(stored, live)


def percent_of(used: int, limit: int | None) -> float | None:
    if not limit:
        return None
    return round(used * 100 / limit, 2)


# --- quotas ------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaReport:
    warned: list[tuple[str, int]]  # (organization id, percent) warnings sent
    exceeded: dict[str, Exceeded]


def quotas_check(now: datetime | None = None) -> QuotaReport:
    """For every organization with usage this month: send the 80 % and 100 % warnings
    once per month, and publish the organizations whose plan pauses ingest past a share."""
    month = month_start(now)
    warned: list[tuple[str, int]] = []
    exceeded: dict[str, Exceeded] = {}
    for org_id, used in UsageCounter.objects.filter(month=month, traces__gt=0).values_list(
        "organization_id", "traces"
    ):
        subscription = subscription_for(org_id)
        limit = subscription.monthly_traces
        if not limit:
            continue
        percent = used * 100 / limit
        block_at = subscription.plan.block_at_percent
        if block_at is not None and percent > block_at:
            exceeded[str(org_id)] = Exceeded(plan=subscription.plan.code, limit=limit, used=used)
        reached = max((p for p in WARN_PERCENTS if percent >= p), default=0)
        already = subscription.warned_percent if subscription.warned_month == month else 0
        if reached > already and _warning_record(org_id, month, reached):
            _warning_send(subscription, reached, used, limit)
            warned.append((str(org_id), reached))
    exceeded_publish(exceeded)
    return QuotaReport(warned=warned, exceeded=exceeded)


def _warning_record(organization_id: uuid.UUID, month: date, percent: int) -> bool:
    """Record the warning; False when another run recorded it (or a higher one) first."""
    with transaction.atomic():
        subscription = subscription_for(organization_id, lock=True)
        already = subscription.warned_percent if subscription.warned_month == month else 0
        if percent <= already:
            return False
        subscription.warned_month = month
        subscription.warned_percent = percent
        subscription.save(update_fields=["warned_month", "warned_percent", "updated_at"])
    return True


def _warning_send(subscription: Subscription, percent: int, used: int, limit: int) -> None:
    owners = list(
        Membership.objects.filter(organization_id=subscription.organization_id, role=Role.OWNER)
        .values_list("user__email", flat=True)
        .order_by("user__email")
    )
    if not owners:
        return
    org = subscription.organization
    plan = subscription.plan
    lines = [
        f"{org.name} has used {used:,} of the {limit:,} traces included in its {plan.name} plan "
        f"this month ({percent}%). A trace here is one span accepted by ingest.",
        "",
    ]
    if plan.block_at_percent is not None:
        lines.append(
            f"Past {plan.block_at_percent}% ingest answers 429 quota_exceeded until the month ends. "
            "Upgrade to keep sending: POST /v1/billing/checkout with a paid plan, or the billing "
            f"settings at {settings.UNTRACE_PUBLIC_URL}."
        )
    else:
        lines.append("Ingest keeps accepting traces; consider a larger plan.")
    try:
        send_mail(
            f"Untrace: {org.name} used {percent}% of its monthly traces",
            "\n".join(lines),
            None,
            owners,
        )
    except Exception:  # the warning is recorded; mail trouble must not stop the task
        logger.exception("could not send the %d%% quota warning of organization %s", percent, org.id)


def quota_message(exceeded: Exceeded) -> str:
    return (
        f"This organization has used {exceeded.used:,} traces (spans) this month, over the "
        f"{exceeded.limit:,} included in its {exceeded.plan} plan; ingest is paused until the month "
        'ends. Upgrade to a paid plan (POST /v1/billing/checkout with {"plan": "growth"} or '
        f'{{"plan": "scale"}}, or {settings.UNTRACE_PUBLIC_URL}) to resume at once.'
    )


# --- destination limit ---------------------------------------------------------


def destination_limit_check(project_id: uuid.UUID) -> None:
    """403 plan_limit when the organization has more destinations than its plan allows.
    Call after saving the new one, inside its transaction: the billing row is locked
    first, so concurrent creations are counted one after the other (the count runs
    after the lock is granted and sees what the other committed)."""
    from apps.destinations.models import Destination  # destinations call this module

    organization_id = Project.objects.filter(id=project_id).values_list("organization_id", flat=True).get()
    subscription = subscription_for(organization_id, lock=True)
    limit = subscription.max_destinations
    if limit is None:
        return
    existing = Destination.objects.filter(project__organization_id=organization_id).count()
    if existing > limit:
        existing -= 1  # the one being created
        raise ApiError(
            status_code=403,
            code="plan_limit",
            message=f"The {subscription.plan.name} plan allows {limit} destinations per organization "
            f"and this organization has {existing}. Upgrade (POST /v1/billing/checkout) or delete one.",
            details={
                "limit": "destinations",
                "max": limit,
                "current": existing,
                "plan": subscription.plan.code,
            },
        )


def retention_days_for(organization_id: uuid.UUID) -> int | None:
    """The organization's retention from its subscription (or the default plan); None: no limit
    of its own, so the deployment's UNTRACE_RETENTION_DAYS applies."""
    subscription = Subscription.objects.filter(organization_id=organization_id).select_related("plan").first()
    if subscription is not None:
        return subscription.retention_days
    return plan_get(settings.UNTRACE_DEFAULT_PLAN).retention_days


def usage_summary(organization_id: uuid.UUID | str) -> dict[str, Any]:
    """The organization's plan, limits and this calendar month's (UTC) usage, as the
    API and the dashboard show it."""
    from apps.billing.usage import month_start, quota_exceeded
    from apps.destinations.models import Destination

    subscription = subscription_for(organization_id)
    used = usage_this_month(organization_id)
    month = month_start()
    limit = subscription.monthly_traces
    return {
        "plan": {
            "code": subscription.plan.code,
            "name": subscription.plan.name,
            "price_cents": subscription.plan.price_cents,
        },
        "status": subscription.status,
        "limits": {
            "traces_per_month": limit,
            "destinations": subscription.max_destinations,
            "retention_days": subscription.retention_days,
        },
        "usage": {
            "traces": used,
            "destinations": Destination.objects.filter(project__organization_id=organization_id).count(),
        },
        "percent_used": percent_of(used, limit),
        "ingest_paused": quota_exceeded(organization_id) is not None,
        "period": {"start": at_midnight(month), "end": at_midnight(month_end(month))},
    }
