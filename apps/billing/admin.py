from django.contrib import admin

from apps.audit.services import audit_record
from apps.billing.models import Plan, StripeEvent, Subscription, UsageCounter


def _name(field: str) -> str:
    return "plan" if field == "plan_id" else field


def _plain(field: str, value):
    """Audit details are JSON: the plan by its code, other values as they are."""
    if field == "plan_id" and value is not None:
        return Plan.objects.filter(pk=value).values_list("code", flat=True).first()
    return value


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "price_cents",
        "monthly_traces",
        "max_destinations",
        "retention_days",
        "block_at_percent",
        "rate_limit_per_second",
        "rate_limit_burst",
    )


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("organization", "plan", "status", "current_period_end", "warned_month", "warned_percent")
    list_filter = ("plan", "status")
    search_fields = (
        "organization__name",
        "organization__slug",
        "stripe_customer_id",
        "stripe_subscription_id",
    )
    raw_id_fields = ("organization",)
    _AUDITED = (
        "plan_id",
        "status",
        "custom_monthly_traces",
        "custom_max_destinations",
        "custom_retention_days",
    )

    def save_model(self, request, obj, form, change):
        """Staff changes of plan and limits go to the organization's audit log."""
        before = {}
        if change:
            before = dict(Subscription.objects.filter(pk=obj.pk).values(*self._AUDITED).first() or {})
        super().save_model(request, obj, form, change)
        after = {field: getattr(obj, field) for field in self._AUDITED}
        changed = {field: value for field, value in after.items() if before.get(field) != value}
        if change and changed:
            audit_record(
                action="billing.plan_changed",
                organization_id=obj.organization_id,
                actor_user_id=request.user.pk,
                target_type="subscription",
                target_id=obj.pk,
                details={
                    "before": {_name(field): _plain(field, before.get(field)) for field in changed},
                    "after": {_name(field): _plain(field, value) for field, value in changed.items()},
                    "by": "staff",
                },
            )


@admin.register(UsageCounter)
class UsageCounterAdmin(admin.ModelAdmin):
    list_display = ("organization", "month", "traces", "updated_at")
    list_filter = ("month",)
    readonly_fields = ("organization", "month", "traces", "updated_at")


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "created", "received_at", "outcome")
    list_filter = ("type", "outcome")
    readonly_fields = ("id", "type", "created", "received_at", "outcome")
