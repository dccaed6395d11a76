from django.contrib import admin

from apps.billing.models import Plan, StripeEvent, Subscription, UsageCounter


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
