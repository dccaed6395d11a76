"""Stripe: Checkout and Customer Portal sessions, and the webhook events that change plans.

Events are applied idempotently (a `StripeEvent` row per event id, written in the
transaction that applies it) and in order: each billing row remembers the
`created` time of the newest event applied and the subscription's current period
start, and an event older than either is recorded but changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction

from apps.accounts.models import Organization
from apps.audit.services import audit_record
from apps.billing.models import PlanCode, StripeEvent, Subscription, SubscriptionStatus
from apps.billing.plans import plan_get
from apps.billing.services import subscription_for
from apps.billing.usage import exceeded_clear
from apps.core.errors import ApiError

logger = logging.getLogger(__name__)
CHECKOUT_PLANS = (PlanCode.GROWTH, PlanCode.SCALE)
# Statuses in which a paid plan's limits apply; others fall back to the starter plan.
PAID_STATUSES = {
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PAST_DUE,
}


def billing_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def billing_disabled_error() -> ApiError:
    return ApiError(
        status_code=501,
        code="billing_disabled",
        message="Billing is not enabled on this installation (STRIPE_SECRET_KEY is not set); "
        "limits come from the plan assigned to the organization in the admin.",
    )


def stripe_client() -> stripe.StripeClient:
    if not billing_enabled():
        raise billing_disabled_error()
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=1,
    )


def _provider_error(exc: stripe.StripeError) -> ApiError:
    logger.warning("Stripe refused a request: %s", exc)
    return ApiError(
        status_code=502,
        code="billing_provider_error",
        message=f"Stripe refused the request: {exc.user_message or exc.__class__.__name__}",
    )


def price_for(plan: str) -> str:
    return {PlanCode.GROWTH: settings.STRIPE_PRICE_GROWTH, PlanCode.SCALE: settings.STRIPE_PRICE_SCALE}.get(
        plan, ""
    )


def overage_price_for(plan: str) -> str:
    return {
        PlanCode.GROWTH: settings.STRIPE_PRICE_GROWTH_OVERAGE,
        PlanCode.SCALE: settings.STRIPE_PRICE_SCALE_OVERAGE,
    }.get(plan, "")


def plan_for_price(price_id: str | None) -> str | None:
    if not price_id:
        return None
    return next((plan for plan in CHECKOUT_PLANS if price_for(plan) == price_id), None)


def _return_url(outcome: str, path: str = "/") -> str:
    return f"{settings.UNTRACE_PUBLIC_URL.rstrip('/')}{path}?billing={outcome}"


def checkout_create(
    *, organization_id: uuid.UUID, plan: str, email: str | None = None, return_path: str = "/"
) -> dict[str, str]:
    """A Stripe Checkout Session subscribing the organization to `plan`; its id and URL.
    Stripe sends the customer back to `return_path` (of UNTRACE_PUBLIC_URL) afterwards."""
    client = stripe_client()
    price = price_for(plan)
    if not price:
        setting = f"STRIPE_PRICE_{plan.upper()}"
        raise ApiError(
            status_code=501,
            code="billing_disabled",
            message=f"The {plan} plan has no Stripe price on this installation ({setting} is not set).",
        )
    subscription = subscription_for(organization_id)
    if subscription.stripe_subscription_id and subscription.status in PAID_STATUSES:
        raise ApiError(
            status_code=409,
            code="already_subscribed",
            message=f"This organization already has a {subscription.plan.name} subscription; "
            "change plans in the Customer Portal (POST /v1/billing/portal).",
        )
    try:
        customer_id = subscription.stripe_customer_id or _customer_create(client, subscription, email)
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer_id,
                "client_reference_id": str(organization_id),
                "line_items": _line_items(plan),
                "metadata": {"organization_id": str(organization_id), "plan": plan},
                "subscription_data": {"metadata": {"organization_id": str(organization_id), "plan": plan}},
                "success_url": _return_url("success", return_path),
                "cancel_url": _return_url("canceled", return_path),
            },
            options={"idempotency_key": f"checkout-{organization_id}-{plan}-{uuid.uuid4()}"},
        )
    except stripe.StripeError as exc:
        raise _provider_error(exc) from exc
    return {"id": session.id, "url": session.url}


def _line_items(plan: str) -> list[dict[str, Any]]:
    """The plan's flat price, and its metered overage price when there is one (metered
    prices take no quantity: Stripe bills what the meter events add up to)."""
    items: list[dict[str, Any]] = [{"price": price_for(plan), "quantity": 1}]
    if overage_price_for(plan):
        items.append({"price": overage_price_for(plan)})
    return items


def _customer_create(client: stripe.StripeClient, subscription: Subscription, email: str | None) -> str:
    org = subscription.organization
    params: dict[str, Any] = {
        "name": org.name,
        "metadata": {"organization_id": str(org.id), "organization_slug": org.slug},
    }
    if email:
        params["email"] = email
    customer = client.v1.customers.create(params=params, options={"idempotency_key": f"customer-{org.id}"})
    Subscription.objects.filter(pk=subscription.pk, stripe_customer_id="").update(
        stripe_customer_id=customer.id
    )
    return customer.id


def portal_create(*, organization_id: uuid.UUID, return_path: str = "/") -> dict[str, str]:
    """A Customer Portal session for the organization's Stripe customer; its id and URL."""
    client = stripe_client()
    subscription = subscription_for(organization_id)
    if not subscription.stripe_customer_id:
        raise ApiError(
            status_code=409,
            code="no_billing_account",
            message="This organization has no Stripe customer yet; subscribe first with "
            "POST /v1/billing/checkout.",
        )
    try:
        session = client.v1.billing_portal.sessions.create(
            params={
                "customer": subscription.stripe_customer_id,
                "return_url": _return_url("portal", return_path),
            }
        )
    except stripe.StripeError as exc:
        raise _provider_error(exc) from exc
    return {"id": session.id, "url": session.url}


def subscription_cancel(*, organization_id: uuid.UUID) -> bool:
    """Cancel the organization's Stripe subscription now (when it has one and billing is
    enabled); True when Stripe canceled it. One Stripe no longer knows is taken as
    canceled already; any other refusal raises (502)."""
    subscription = Subscription.objects.filter(organization_id=organization_id).first()
    if subscription is None or not subscription.stripe_subscription_id or not billing_enabled():
        return False
    client = stripe_client()
    try:
        client.v1.subscriptions.cancel(
            subscription.stripe_subscription_id,
            options={"idempotency_key": f"cancel-{subscription.stripe_subscription_id}"},
        )
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404:
            raise _provider_error(exc) from exc
        return False
    except stripe.StripeError as exc:
        raise _provider_error(exc) from exc
    Subscription.objects.filter(pk=subscription.pk).update(status=SubscriptionStatus.CANCELED)
    return True


# --- webhooks ------------------------------------------------------------------


class WebhookRejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def webhook_event(payload: bytes, signature: str | None) -> stripe.Event:
    """The verified event (raises WebhookRejected)."""
    if not billing_enabled():
        raise WebhookRejected(501, "billing_disabled", billing_disabled_error().message)
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise WebhookRejected(
            501, "billing_disabled", "Stripe webhooks are not enabled (STRIPE_WEBHOOK_SECRET is not set)."
        )
    if not signature:
        raise WebhookRejected(400, "invalid_signature", "The Stripe-Signature header is missing.")
    try:
        return stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(400, "invalid_signature", f"Stripe signature check failed: {exc}") from exc
    except ValueError as exc:
        raise WebhookRejected(400, "invalid_json", "The event is not valid JSON.") from exc


def webhook_handle(event: stripe.Event) -> str:
    """Apply the event once; returns the outcome (applied, stale, ignored, replayed)."""
    created = datetime.fromtimestamp(int(event["created"]), tz=UTC)
    with transaction.atomic():
        record, new = StripeEvent.objects.get_or_create(
            id=event["id"], defaults={"type": event["type"], "created": created}
        )
        if not new:
            return "replayed"
        record.outcome = _apply(event["type"], event["data"]["object"], created)
        record.save(update_fields=["outcome"])
    return record.outcome


def _apply(event_type: str, obj: Any, created: datetime) -> str:
    if event_type == "checkout.session.completed":
        return _checkout_completed(obj, created)
    if event_type in (
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ):
        return _subscription_changed(obj, created, deleted=event_type.endswith(".deleted"))
    if event_type == "invoice.payment_failed":
        return _payment_failed(obj, created)
    return "ignored"


def _value(obj: Any, key: str) -> Any:
    try:
        return obj[key]
    except (KeyError, TypeError):
        return None


def _id_of(value: Any) -> str:
    """An id from a field holding either the id or the expanded object."""
    if isinstance(value, str):
        return value
    return _value(value, "id") or ""


def _billing_row(*, organization_id: str | None, customer_id: str) -> Subscription | None:
    """The billing row an event is about, locked: by the organization id in the metadata,
    else by the Stripe customer."""
    if organization_id:
        try:
            org_uuid: uuid.UUID | None = uuid.UUID(str(organization_id))
        except ValueError:
            org_uuid = None
        if org_uuid and Organization.objects.filter(id=org_uuid).exists():
            return subscription_for(org_uuid, lock=True)
    if customer_id:
        return (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("plan")
            .filter(stripe_customer_id=customer_id)
            .first()
        )
    return None


def _stale(row: Subscription, created: datetime, period_start: datetime | None = None) -> bool:
    if period_start and row.current_period_start and period_start < row.current_period_start:
        return True
    return bool(row.stripe_event_created and created < row.stripe_event_created)


def _metadata_org(obj: Any) -> str | None:
    return _value(_value(obj, "metadata") or {}, "organization_id")


def _checkout_completed(session: Any, created: datetime) -> str:
    if _value(session, "mode") != "subscription":
        return "ignored"
    org_id = _value(session, "client_reference_id") or _metadata_org(session)
    row = _billing_row(organization_id=org_id, customer_id=_id_of(_value(session, "customer")))
    if row is None:
        return "unknown_customer"
    before = _plan_state(row)
    row.stripe_customer_id = _id_of(_value(session, "customer")) or row.stripe_customer_id
    row.stripe_subscription_id = _id_of(_value(session, "subscription")) or row.stripe_subscription_id
    fields = ["stripe_customer_id", "stripe_subscription_id", "updated_at"]
    plan_code = _value(_value(session, "metadata") or {}, "plan")
    # The subscription events carry the authoritative state; this one only fills in
    # what they have not said yet.
    if not _stale(row, created) and plan_code in CHECKOUT_PLANS and row.plan.code != plan_code:
        row.plan = plan_get(plan_code)
        row.status = SubscriptionStatus.ACTIVE
        row.stripe_event_created = created
        fields += ["plan", "status", "stripe_event_created"]
    row.save(update_fields=fields)
    _audit_plan_change(row, before)
    _resume_ingest(row.organization_id)
    return "applied"


def _plan_state(row: Subscription) -> dict[str, str]:
    return {"plan": row.plan.code, "status": row.status}


def _audit_plan_change(row: Subscription, before: dict[str, str]) -> None:
    after = _plan_state(row)
    if after != before:
        audit_record(
            action="billing.plan_changed",
            organization_id=row.organization_id,
            target_type="subscription",
            target_id=row.pk,
            details={"before": before, "after": after, "by": "stripe"},
        )


def _resume_ingest(organization_id: uuid.UUID) -> None:
    """A new plan may lift the quota: drop the organization from the paused set after commit
    (the next usage task pauses it again if the new plan is exceeded too)."""
    transaction.on_commit(lambda: exceeded_clear(organization_id))


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _subscription_period(subscription: Any) -> tuple[datetime | None, datetime | None]:
    """current_period_start/end, on the subscription (older API versions) or its first item."""
    start, end = _value(subscription, "current_period_start"), _value(subscription, "current_period_end")
    if start is None:
        items = _value(_value(subscription, "items") or {}, "data") or []
        if items:
            start = _value(items[0], "current_period_start")
            end = _value(items[0], "current_period_end")
    return _timestamp(start), _timestamp(end)


def _subscription_price(subscription: Any) -> str | None:
    """The flat price among the subscription's items (the other may be the metered overage)."""
    items = _value(_value(subscription, "items") or {}, "data") or []
    prices = [_id_of(_value(item, "price")) for item in items]
    return next((price for price in prices if plan_for_price(price)), prices[0] if prices else None)


def _subscription_changed(subscription: Any, created: datetime, *, deleted: bool) -> str:
    row = _billing_row(
        organization_id=_metadata_org(subscription), customer_id=_id_of(_value(subscription, "customer"))
    )
    if row is None:
        return "unknown_customer"
    subscription_id = _id_of(subscription)
    if row.stripe_subscription_id and row.stripe_subscription_id != subscription_id and deleted:
        return "ignored"  # an older subscription ending after a new one started
    period_start, period_end = _subscription_period(subscription)
    if _stale(row, created, period_start):
        return "stale"
    status = _value(subscription, "status") or ""
    before = _plan_state(row)
    row.stripe_customer_id = _id_of(_value(subscription, "customer")) or row.stripe_customer_id
    row.stripe_event_created = created
    if deleted or status not in PAID_STATUSES:
        row.plan = plan_get(PlanCode.STARTER)
        row.status = SubscriptionStatus.CANCELED if deleted else status
        if deleted:
            row.stripe_subscription_id = ""
    else:
        row.stripe_subscription_id = subscription_id
        row.status = status
        plan_code = plan_for_price(_subscription_price(subscription))
        if plan_code is None:
            logger.warning("subscription %s has a price of no plan; plan unchanged", subscription_id)
        else:
            row.plan = plan_get(plan_code)
    if period_start:
        row.current_period_start, row.current_period_end = period_start, period_end
    row.save()
    _audit_plan_change(row, before)
    _resume_ingest(row.organization_id)
    return "applied"


def _payment_failed(invoice: Any, created: datetime) -> str:
    row = _billing_row(organization_id=None, customer_id=_id_of(_value(invoice, "customer")))
    if row is None:
        return "unknown_customer"
    if not row.stripe_subscription_id:
        return "ignored"
    if _stale(row, created):
        return "stale"
    row.status = SubscriptionStatus.PAST_DUE
    row.stripe_event_created = created
    row.save(update_fields=["status", "stripe_event_created", "updated_at"])
    return "applied"
