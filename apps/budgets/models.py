"""LLM spend budgets of a project (or of one of its API keys), and the alerts they sent."""

from __future__ import annotations

from django.db import models

from apps.core.models import ProjectScopedModel, TimeStampedModel

DEFAULT_THRESHOLDS = (50, 80, 100)


def default_thresholds() -> list[int]:
    return list(DEFAULT_THRESHOLDS)


class Period(models.TextChoices):
    MONTHLY = "monthly", "calendar month (UTC)"
    DAILY = "daily", "day (UTC)"


class Budget(ProjectScopedModel):
    """A spend limit in USD over a calendar period, computed from the traced cost of spans.

    `api_key` empty: the whole project's spend; set: only the spans that key sent.
    `hard_stop`: once spent, the proxy refuses the project's (or the key's) LLM calls
    until the period resets; ingest is never stopped by a budget.
    """

    name = models.CharField(max_length=200)
    api_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    amount_usd = models.DecimalField(max_digits=14, decimal_places=2)
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTHLY)
    thresholds = models.JSONField(default=default_thresholds)  # percents, sorted, unique, 1..1000
    alert_emails = models.JSONField(default=list, blank=True)
    alert_webhook_url = models.CharField(max_length=500, blank=True, default="")
    webhook_secret_encrypted = models.TextField()  # Fernet (apps.core.crypto); shown once on creation
    hard_stop = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)

    class Meta:
        indexes = [models.Index(fields=["project", "created_at"], name="budget_project_idx")]

    def __str__(self) -> str:
        return self.name


class BudgetAlert(TimeStampedModel):
    """One threshold crossed in one period: recorded once (the unique constraint), then sent.

    `sent_at` stays empty until every channel (email, webhook) went out; the evaluation
    task retries the channels still missing on its next runs within the period.
    """

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveIntegerField()
    spend_usd = models.DecimalField(max_digits=20, decimal_places=8)
    sent_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold"], name="uniq_budget_alert_per_period"
            )
        ]
        indexes = [
            models.Index(
                fields=["period_start"],
                name="budget_alert_pending_idx",
                condition=models.Q(sent_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.threshold}% {self.period_start:%Y-%m-%d}"
