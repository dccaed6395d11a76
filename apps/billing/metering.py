"""Usage above a paid plan's included traces, reported to Stripe as meter events.

Each paid subscription carries, next to its flat monthly price, a metered price
attached to a Stripe Billing Meter (`STRIPE_METER_EVENT_NAME`, aggregation
"sum"). A beat task reports, per organization and calendar month (UTC, the
month usage and quotas are counted in), the spans above the plan's included
volume that Stripe has not been told about yet; Stripe adds them to the next
invoice. `OverageReport` keeps the total reported so far: a report sends only
the difference, under a row lock so two runs never send the same traces, with an
identifier (organization, month, new total) that Stripe de-duplicates if a run
dies between Stripe's answer and the commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import stripe
from django.conf import settings
from django.db import transaction

from apps.billing.models import OverageReport, Subscription, UsageCounter
from apps.billing.services import at_midnight, month_end
from apps.billing.stripe_billing import PAID_STATUSES, billing_enabled, stripe_client
from apps.billing.usage import month_start

logger = logging.getLogger(__name__)
# The last month's final counts are persisted within minutes of its end; keep
# reporting it for a few days so nothing counted late is left unbilled.
LATE_DAYS = 3


@dataclass(frozen=True)
class OverageRun:
    reported: int  # meter events Stripe accepted
    failed: int  # refused or unreachable; retried on the next run


def metering_enabled() -> bool:
    return billing_enabled() and bool(settings.STRIPE_METER_EVENT_NAME)


def overage_of(traces: int, subscription: Subscription) -> int:
    """Traces above the included volume, for plans that bill overage (paid, not
    blocking at a percentage, not unlimited)."""
    included = subscription.monthly_traces
    if included is None or subscription.plan.block_at_percent is not None:
        return 0
    return max(0, traces - included)


def _months(now: datetime) -> list[date]:
    this_month = month_start(now)
    months = [this_month]
    if now - at_midnight(this_month) < timedelta(days=LATE_DAYS):
        months.append(month_start(at_midnight(this_month) - timedelta(days=1)))
    return months


def overage_report(now: datetime | None = None) -> OverageRun:
    if not metering_enabled():
        return OverageRun(0, 0)
    now = now or datetime.now(UTC)
    reported = failed = 0
    for month in _months(now):
        counters = UsageCounter.objects.filter(
            month=month,
            organization__billing__status__in=PAID_STATUSES,
            organization__billing__stripe_customer_id__gt="",
        ).values_list("organization_id", "traces")
        for organization_id, traces in counters:
            outcome = _report_one(organization_id, month, traces, now)
            reported += outcome is True
            failed += outcome is False
    return OverageRun(reported, failed)


def _report_one(organization_id, month: date, traces: int, now: datetime) -> bool | None:
    """True when Stripe confirmed an event, False when it failed, None when nothing was due."""
    subscription = Subscription.objects.select_related("plan").get(organization_id=organization_id)
    with transaction.atomic():
        report, _ = OverageReport.objects.select_for_update().get_or_create(
            organization_id=organization_id, month=month
        )
        if report.pending <= report.reported:  # nothing in flight: take what is new
            overage = overage_of(traces, subscription)
            if overage <= report.reported:
                return None
            # Stripe places an event in the billing period its timestamp falls in.
            last_second = at_midnight(month_end(month)) - timedelta(seconds=1)
            report.pending, report.pending_at = overage, min(now, last_second)
            report.save(update_fields=["pending", "pending_at", "updated_at"])
    identifier = f"{organization_id}-{month:%Y%m}-{report.pending}"
    try:
        stripe_client().v1.billing.meter_events.create(
            params={
                "event_name": settings.STRIPE_METER_EVENT_NAME,
                "identifier": identifier,
                "timestamp": int(report.pending_at.timestamp()),
                "payload": {
                    "stripe_customer_id": subscription.stripe_customer_id,
                    "value": str(report.pending - report.reported),
                },
            },
            # A resend after a lost answer gets Stripe's first answer back, not a second event.
            options={"idempotency_key": f"meter-{identifier}-{report.reported}"},
        )
    except stripe.StripeError as exc:
        logger.warning("Stripe refused the overage of %s for %s: %s", organization_id, month, exc)
        return False
    OverageReport.objects.filter(pk=report.pk, reported__lt=report.pending).update(
        reported=report.pending, updated_at=now
    )
    return True
