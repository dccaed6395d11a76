"""/v1/usage, /v1/billing/checkout, /v1/billing/portal and the Stripe webhook."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.billing.models import PlanCode
from apps.billing.selectors import billing_contact_email
from apps.billing.services import (
    usage_summary,
)
from apps.billing.stripe_billing import (
    CHECKOUT_PLANS,
    WebhookRejected,
    billing_disabled_error,
    billing_enabled,
    checkout_create,
    portal_create,
    webhook_event,
    webhook_handle,
)
from apps.core.errors import error_response, invalid_field
from apps.core.ratelimit import ip_refused_response
from apps.keys.auth import client_ip

UsageSchema = inline_serializer(
    "Usage",
    {
        "plan": inline_serializer(
            "UsagePlan",
            {
                "code": serializers.CharField(),
                "name": serializers.CharField(),
                "price_cents": serializers.IntegerField(allow_null=True),
            },
        ),
        "status": serializers.CharField(),
        "limits": inline_serializer(
            "UsageLimits",
            {
                "traces_per_month": serializers.IntegerField(allow_null=True),
                "destinations": serializers.IntegerField(allow_null=True),
                "retention_days": serializers.IntegerField(allow_null=True),
            },
        ),
        "usage": inline_serializer(
            "UsageCounts", {"traces": serializers.IntegerField(), "destinations": serializers.IntegerField()}
        ),
        "percent_used": serializers.FloatField(allow_null=True),
        "ingest_paused": serializers.BooleanField(),
        "period": inline_serializer(
            "UsagePeriod", {"start": serializers.DateTimeField(), "end": serializers.DateTimeField()}
        ),
    },
)
SessionSchema = inline_serializer(
    "BillingSession", {"id": serializers.CharField(), "url": serializers.URLField()}
)
CheckoutSchema = inline_serializer(
    "BillingCheckout", {"plan": serializers.ChoiceField(choices=[str(p) for p in CHECKOUT_PLANS])}
)


class UsageView(APIView):
    """The organization's plan, its limits and this calendar month's (UTC) usage. A
    trace in the limits counts spans accepted (a re-sent span id is not counted twice)."""

    required_scope = "read"

    @extend_schema(responses={200: UsageSchema})
    def get(self, request: Request) -> Response:
        return Response(usage_summary(request.auth.organization_id))


class CheckoutView(APIView):
    """A Stripe Checkout Session subscribing the key's organization to a paid plan."""

    required_scope = "write"

    @extend_schema(request=CheckoutSchema, responses={200: SessionSchema})
    def post(self, request: Request) -> Response:
        if not billing_enabled():
            raise billing_disabled_error()
        if not isinstance(request.data, dict):
            raise invalid_field("body", "must be a JSON object")
        plan = request.data.get("plan")
        if plan is None:
            raise invalid_field("plan", "is required")
        if plan not in CHECKOUT_PLANS:
            choices = ", ".join(str(p) for p in CHECKOUT_PLANS)
            hint = " (enterprise plans are arranged with sales)" if plan == PlanCode.ENTERPRISE else ""
            raise invalid_field("plan", f"must be one of {choices}, not {plan!r}{hint}")
        organization_id = request.auth.organization_id
        return Response(
            checkout_create(
                organization_id=organization_id, plan=plan, email=billing_contact_email(organization_id)
            )
        )


class PortalView(APIView):
    """A Stripe Customer Portal session: change plan, payment method, invoices, cancel."""

    required_scope = "write"

    @extend_schema(request=None, responses={200: SessionSchema})
    def post(self, request: Request) -> Response:
        return Response(portal_create(organization_id=request.auth.organization_id))


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe's events: signature checked, each event applied once and in order; limited per IP."""
    refused = ip_refused_response(
        "stripe_webhook_ip", "UNTRACE_RATE_LIMIT_STRIPE_WEBHOOK_PER_IP", client_ip(request.META)
    )
    if refused is not None:
        return refused
    try:
        event = webhook_event(request.body, request.headers.get("Stripe-Signature"))
    except WebhookRejected as exc:
        return error_response(exc.status, exc.code, exc.message)
    outcome = webhook_handle(event)
    return JsonResponse({"received": True, "outcome": outcome})
