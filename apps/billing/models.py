"""Plans, each organization's billing row, monthly usage and the Stripe events already handled."""

from __future__ import annotations

from django.db import models

from apps.core.models import TimeStampedModel


class PlanCode(models.TextChoices):
    STARTER = "starter", "Starter"
    GROWTH = "growth", "Growth"
    SCALE = "scale", "Scale"
    ENTERPRISE = "enterprise", "Enterprise"


class Plan(models.Model):
    """A plan's limits; seeded by a migration, edited in the admin. Empty limits are unlimited."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    price_cents = models.PositiveIntegerField(null=True, blank=True, help_text="Per month; empty: custom")
    monthly_traces = models.BigIntegerField(
        null=True, blank=True, help_text="Spans accepted per calendar month (UTC); empty: unlimited"
    )
    max_destinations = models.PositiveIntegerField(
        null=True, blank=True, help_text="Destinations per organization; empty: unlimited"
    )
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    block_at_percent = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Ingest answers 429 past this share of monthly_traces; empty: never (usage is billed)",
    )
    rate_limit_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests a second per API key, on average (ingest, proxy, API); empty: unlimited",
    )
    rate_limit_burst = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per API key at once; empty: twice the rate"
    )

    class Meta:
        ordering = ["price_cents", "code"]

    def __str__(self) -> str:
        return self.name


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    TRIALING = "trialing", "Trialing"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    PAUSED = "paused", "Paused"
    CANCELED = "canceled", "Canceled"


class Subscription(TimeStampedModel):
    """An organization's billing row: its plan, its Stripe ids and the quota warnings sent."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="billing"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(
        max_length=24, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    # `created` of the newest Stripe event applied: older events arriving late are ignored.
    stripe_event_created = models.DateTimeField(null=True, blank=True)
    # Custom limits (enterprise contracts), set by staff; empty: the plan's.
    custom_monthly_traces = models.BigIntegerField(null=True, blank=True)
    custom_max_destinations = models.PositiveIntegerField(null=True, blank=True)
    custom_retention_days = models.PositiveIntegerField(null=True, blank=True)
    # The highest quota warning (80 or 100 percent) sent for `warned_month`.
    warned_month = models.DateField(null=True, blank=True)
    warned_percent = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.organization} ({self.plan.code})"

    @property
    def monthly_traces(self) -> int | None:
        custom = self.custom_monthly_traces
        return custom if custom is not None else self.plan.monthly_traces

    @property
    def max_destinations(self) -> int | None:
        if self.custom_max_destinations is not None:
            return self.custom_max_destinations
        return self.plan.max_destinations

    @property
    def retention_days(self) -> int | None:
        custom = self.custom_retention_days
        return custom if custom is not None else self.plan.retention_days


class UsageCounter(models.Model):
    """Spans accepted per organization and calendar month (UTC); `month` is its first day."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    traces = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "month"], name="uniq_usage_month")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.month:%Y-%m}: {self.traces}"


class OverageReport(models.Model):
    """Traces above the plan reported to Stripe as metered usage, per organization and month."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    month = models.DateField()
    reported = models.BigIntegerField(default=0, help_text="Traces Stripe has confirmed")
    # The total being reported (`pending` > `reported`): written before the call to
    # Stripe and resent unchanged until confirmed, so a lost answer is never billed twice.
    pending = models.BigIntegerField(default=0)
    pending_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "month"], name="uniq_overage_month")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.month:%Y-%m}: {self.reported} reported"


class StripeEvent(models.Model):
    """A Stripe webhook event already handled: a re-delivery of the same id is ignored."""

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=100)
    created = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    outcome = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:
        return f"{self.id} ({self.type})"
