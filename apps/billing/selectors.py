"""What the billing page shows: plan, limits, this month's usage and warning, Stripe state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apps.accounts.models import Membership, Role
from apps.billing.models import Plan, Subscription, SubscriptionStatus
from apps.billing.plans import plan_get
from apps.billing.services import usage_summary
from apps.billing.stripe_billing import CHECKOUT_PLANS, PAID_STATUSES, billing_enabled
from apps.billing.usage import month_start

# Statuses in which Stripe is still owed money: the page asks for a payment method.
PAYMENT_NEEDED = {
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.INCOMPLETE,
}


def price_text(cents: int | None) -> str:
    if cents is None:
        return "Custom pricing"
    if cents == 0:
        return "Free"
    dollars = f"{cents // 100:,}" if cents % 100 == 0 else f"{cents / 100:,.2f}"
    return f"${dollars} / month"


@dataclass(frozen=True)
class PlanOffer:
    """A plan as the page offers it."""

    code: str
    name: str
    price: str
    monthly_traces: int | None
    max_destinations: int | None
    retention_days: int | None

    @classmethod
    def of(cls, plan: Plan) -> PlanOffer:
        return cls(
            plan.code,
            plan.name,
            price_text(plan.price_cents),
            plan.monthly_traces,
            plan.max_destinations,
            plan.retention_days,
        )


@dataclass(frozen=True)
class BillingOverview:
    usage: dict[str, Any]  # usage_summary, as GET /v1/usage answers it
    subscription: Subscription
    stripe_enabled: bool
    warning: str | None  # "paused", "limit" (100 %), "near" (80 %) or None
    warned_percent: int  # the quota email sent to owners this month (0, 80 or 100)
    upgrades: list[PlanOffer]  # paid plans Checkout can subscribe the organization to
    subscribed: bool  # a paid Stripe subscription is live: plan changes go through the Portal
    portal: bool  # the organization has a Stripe customer, so the Portal can open
    payment_needed: bool
    custom_limits: bool  # staff set limits of their own on the billing row
    period_end: datetime | None

    @property
    def status(self) -> str:
        return SubscriptionStatus(self.subscription.status).label

    @property
    def price(self) -> str:
        return price_text(self.subscription.plan.price_cents)

    @property
    def bar_percent(self) -> float:
        """The usage bar's fill: the share used, at most 100."""
        return min(self.usage["percent_used"] or 0, 100)


def warning_level(usage: dict[str, Any]) -> str | None:
    """The quota banner of the page, from the same numbers as the 80 % and 100 % emails."""
    if usage["ingest_paused"]:
        return "paused"
    percent = usage["percent_used"]
    if percent is None:
        return None
    if percent >= 100:
        return "limit"
    if percent >= 80:
        return "near"
    return None


def billing_overview(organization_id: uuid.UUID) -> BillingOverview:
    usage = usage_summary(organization_id)
    subscription = Subscription.objects.select_related("plan").get(organization_id=organization_id)
    enabled = billing_enabled()
    subscribed = bool(subscription.stripe_subscription_id) and subscription.status in PAID_STATUSES
    current_price = subscription.plan.price_cents
    upgrades = []
    if enabled and not subscribed and current_price is not None:
        upgrades = [
            PlanOffer.of(plan)
            for plan in (plan_get(code) for code in CHECKOUT_PLANS)
            if plan.code != subscription.plan.code and (plan.price_cents or 0) > current_price
        ]
    warned = subscription.warned_percent if subscription.warned_month == month_start() else 0
    return BillingOverview(
        usage=usage,
        subscription=subscription,
        stripe_enabled=enabled,
        warning=warning_level(usage),
        warned_percent=warned,
        upgrades=upgrades,
        subscribed=subscribed,
        portal=enabled and bool(subscription.stripe_customer_id),
        payment_needed=bool(subscription.stripe_subscription_id) and subscription.status in PAYMENT_NEEDED,
        custom_limits=any(
            value is not None
            for value in (
                subscription.custom_monthly_traces,
                subscription.custom_max_destinations,
                subscription.custom_retention_days,
            )
        ),
        period_end=subscription.current_period_end if subscription.stripe_subscription_id else None,
    )


def billing_contact_email(organization_id: uuid.UUID) -> str | None:
    """The email Stripe's customer gets: the organization's first owner."""
    return (
        Membership.objects.filter(organization_id=organization_id, role=Role.OWNER)
        .order_by("created_at")
        .values_list("user__email", flat=True)
        .first()
    )
