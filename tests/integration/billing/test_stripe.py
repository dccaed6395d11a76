"""Checkout and Customer Portal against a local fake of the Stripe API, and the signed
Stripe webhook: idempotent, in order, plan from the price."""

from __future__ import annotations

import time

import pytest

from apps.billing import usage
from apps.billing.models import StripeEvent, Subscription
from tests.factories import ApiKeyFactory, MembershipFactory, SubscriptionFactory
from tests.integration.billing.conftest import (
    PRICE_GROWTH,
    PRICE_SCALE,
    send_event,
    stripe_event,
    stripe_signature,
)
from tests.integration.ingest.helpers import error_of, post, span
from workers.tasks.billing import persist_usage

pytestmark = pytest.mark.django_db

NOW = int(time.time())


def subscription_object(organization, *, price=PRICE_GROWTH, status="active", period_start=NOW, sub="sub_1"):
    return {
        "id": sub,
        "object": "subscription",
        "customer": "cus_1",
        "status": status,
        "metadata": {"organization_id": str(organization.pk)},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_1",
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price"},
                    "current_period_start": period_start,
                    "current_period_end": period_start + 30 * 86400,
                }
            ],
        },
    }


def billing_of(organization) -> Subscription:
    return Subscription.objects.select_related("plan").get(organization=organization)


# --- disabled ------------------------------------------------------------------


def test_without_a_secret_key_billing_answers_501(api, client):
    for path in ("/v1/billing/checkout", "/v1/billing/portal"):
        error = error_of(api.post(path, {"plan": "growth"}, format="json"), 501, "billing_disabled")
        assert "plan assigned to the organization in the admin" in error["message"]
    payload = stripe_event("evt_1", "customer.subscription.updated", {}, NOW)
    error_of(send_event(client, payload), 501, "billing_disabled")
    assert api.get("/v1/usage").status_code == 200  # usage and limits still work


# --- checkout and portal ----------------------------------------------------------


def test_checkout_creates_a_customer_and_a_session(api, organization, stripe_api):
    owner = MembershipFactory(organization=organization, role="owner").user
    response = api.post("/v1/billing/checkout", {"plan": "growth"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"].startswith("cs_test_fake")
    assert body["url"] == f"https://checkout.stripe.com/c/pay/{body['id']}"

    (customer_path, customer), (session_path, session) = stripe_api.calls
    assert customer_path == "/v1/customers"
    assert customer["email"] == owner.email
    assert customer["metadata[organization_id]"] == str(organization.pk)
    assert session_path == "/v1/checkout/sessions"
    assert session["mode"] == "subscription"
    assert session["line_items[0][price]"] == PRICE_GROWTH
    assert session["customer"] == billing_of(organization).stripe_customer_id
    assert session["client_reference_id"] == str(organization.pk)
    assert session["subscription_data[metadata][plan]"] == "growth"

    # A second checkout reuses the customer.
    assert api.post("/v1/billing/checkout", {"plan": "scale"}, format="json").status_code == 200
    assert [path for path, _ in stripe_api.calls[2:]] == ["/v1/checkout/sessions"]
    assert stripe_api.calls[2][1]["line_items[0][price]"] == PRICE_SCALE


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "plan: is required"),
        ({"plan": "platinum"}, "plan: must be one of growth, scale, not 'platinum'"),
        ({"plan": "starter"}, "plan: must be one of growth, scale, not 'starter'"),
        ({"plan": "enterprise"}, "enterprise plans are arranged with sales"),
        ([1], "body: must be a JSON object"),
    ],
)
def test_checkout_bad_input_is_400(api, stripe_api, body, message):
    error = error_of(api.post("/v1/billing/checkout", body, format="json"), 400, "invalid_request")
    assert message in error["message"]
    assert stripe_api.calls == []


def test_checkout_of_a_plan_without_a_price_is_501(api, stripe_api, settings):
    settings.STRIPE_PRICE_SCALE = ""
    error = error_of(
        api.post("/v1/billing/checkout", {"plan": "scale"}, format="json"), 501, "billing_disabled"
    )
    assert "STRIPE_PRICE_SCALE" in error["message"]


def test_checkout_when_already_subscribed_is_409(api, organization, stripe_api):
    SubscriptionFactory(organization=organization, plan="growth", stripe_subscription_id="sub_1")
    error_of(api.post("/v1/billing/checkout", {"plan": "scale"}, format="json"), 409, "already_subscribed")


def test_stripe_refusing_is_502(api, stripe_api):
    stripe_api.fail_with = (400, "No such price: 'price_growth_test'")
    error = error_of(
        api.post("/v1/billing/checkout", {"plan": "growth"}, format="json"), 502, "billing_provider_error"
    )
    assert "No such price" in error["message"]


def test_billing_endpoints_need_the_write_scope(client, project, stripe_api):
    reader = ApiKeyFactory(project=project, scopes=["read"])
    for path in ("/v1/billing/checkout", "/v1/billing/portal"):
        response = client.post(
            path, {"plan": "growth"}, content_type="application/json", HTTP_X_UNTRACE_KEY=reader.secret
        )
        error_of(response, 403, "missing_scope")


def test_portal(api, organization, stripe_api):
    error_of(api.post("/v1/billing/portal"), 409, "no_billing_account")
    Subscription.objects.filter(organization=organization).update(stripe_customer_id="cus_1")
    response = api.post("/v1/billing/portal")
    assert response.status_code == 200, response.content
    assert response.json()["url"].startswith("https://billing.stripe.com/p/session/")
    path, form = stripe_api.calls[-1]
    assert (path, form["customer"]) == ("/v1/billing_portal/sessions", "cus_1")


# --- webhook -----------------------------------------------------------------------


def test_webhook_without_its_secret_is_501(client, stripe_api, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = stripe_event("evt_1", "customer.subscription.updated", {}, NOW)
    error = error_of(send_event(client, payload), 501, "billing_disabled")
    assert "STRIPE_WEBHOOK_SECRET" in error["message"]


def test_bad_signatures_are_400(client, organization, stripe_api):
    payload = stripe_event("evt_sig", "customer.subscription.updated", subscription_object(organization), NOW)
    error_of(send_event(client, payload, signature=None), 400, "invalid_signature")
    error_of(
        send_event(client, payload, signature=stripe_signature(payload, "whsec_other")),
        400,
        "invalid_signature",
    )
    stale = stripe_signature(payload, timestamp=NOW - 3600)
    error_of(send_event(client, payload, signature=stale), 400, "invalid_signature")
    tampered = payload.replace(b"active", b"canceled")
    error_of(send_event(client, tampered, signature=stripe_signature(payload)), 400, "invalid_signature")
    error_of(send_event(client, b"{not json", signature=stripe_signature(b"{not json")), 400, "invalid_json")
    assert StripeEvent.objects.count() == 0
    assert client.get("/billing/stripe/webhook").status_code == 405


def test_checkout_completed_then_subscription_events_set_the_plan(client, organization, stripe_api):
    session = {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "subscription",
        "customer": "cus_1",
        "subscription": "sub_1",
        "client_reference_id": str(organization.pk),
        "metadata": {"organization_id": str(organization.pk), "plan": "growth"},
    }
    response = send_event(client, stripe_event("evt_co", "checkout.session.completed", session, NOW))
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "outcome": "applied"}
    billing = billing_of(organization)
    assert (billing.plan.code, billing.stripe_customer_id, billing.stripe_subscription_id) == (
        "growth",
        "cus_1",
        "sub_1",
    )

    upgraded = subscription_object(organization, price=PRICE_SCALE)
    send_event(client, stripe_event("evt_up", "customer.subscription.updated", upgraded, NOW + 10))
    billing = billing_of(organization)
    assert (billing.plan.code, billing.status) == ("scale", "active")
    assert int(billing.current_period_start.timestamp()) == NOW


def test_a_replayed_event_is_ignored(client, organization, stripe_api):
    SubscriptionFactory(organization=organization, stripe_customer_id="cus_1")
    payload = stripe_event("evt_r", "customer.subscription.created", subscription_object(organization), NOW)
    assert send_event(client, payload).json()["outcome"] == "applied"
    Subscription.objects.filter(organization=organization).update(status="canceled")  # changed since
    assert send_event(client, payload).json() == {"received": True, "outcome": "replayed"}
    assert billing_of(organization).status == "canceled"
    assert StripeEvent.objects.get().outcome == "applied"


def test_out_of_order_events_keep_the_newest_state(client, organization, stripe_api):
    SubscriptionFactory(organization=organization, stripe_customer_id="cus_1")
    deleted = subscription_object(organization, status="canceled")
    updated = subscription_object(organization, price=PRICE_SCALE)
    send_event(client, stripe_event("evt_del", "customer.subscription.deleted", deleted, NOW + 20))
    # The update happened before the deletion but arrives after it.
    response = send_event(client, stripe_event("evt_upd", "customer.subscription.updated", updated, NOW + 10))
    assert response.json()["outcome"] == "stale"
    billing = billing_of(organization)
    assert (billing.plan.code, billing.status, billing.stripe_subscription_id) == ("starter", "canceled", "")


def test_an_update_of_an_earlier_period_is_stale(client, organization, stripe_api):
    SubscriptionFactory(organization=organization, stripe_customer_id="cus_1")
    renewed = subscription_object(organization, period_start=NOW)
    older = subscription_object(organization, price=PRICE_SCALE, period_start=NOW - 30 * 86400)
    send_event(client, stripe_event("evt_new", "customer.subscription.updated", renewed, NOW))
    # Same second, earlier period: Stripe's created times tie, the period decides.
    assert (
        send_event(client, stripe_event("evt_old", "customer.subscription.updated", older, NOW)).json()[
            "outcome"
        ]
        == "stale"
    )
    assert billing_of(organization).plan.code == "growth"


def test_payment_failed_marks_past_due_and_keeps_the_plan(client, organization, stripe_api):
    SubscriptionFactory(organization=organization, stripe_customer_id="cus_1")
    send_event(
        client, stripe_event("evt_c", "customer.subscription.created", subscription_object(organization), NOW)
    )
    invoice = {"id": "in_1", "object": "invoice", "customer": "cus_1", "status": "open"}
    send_event(client, stripe_event("evt_pf", "invoice.payment_failed", invoice, NOW + 5))
    billing = billing_of(organization)
    assert (billing.plan.code, billing.status) == ("growth", "past_due")
    # A payment failure older than the recovery that followed changes nothing.
    recovered = subscription_object(organization)
    send_event(client, stripe_event("evt_ok", "customer.subscription.updated", recovered, NOW + 60))
    old_failure = stripe_event("evt_pf_old", "invoice.payment_failed", invoice, NOW + 30)
    assert send_event(client, old_failure).json()["outcome"] == "stale"
    assert billing_of(organization).status == "active"


def test_unknown_customers_and_event_types_are_acknowledged(client, stripe_api):
    invoice = {"id": "in_1", "object": "invoice", "customer": "cus_nobody"}
    assert (
        send_event(client, stripe_event("evt_x", "invoice.payment_failed", invoice, NOW)).json()["outcome"]
        == "unknown_customer"
    )
    assert (
        send_event(client, stripe_event("evt_y", "charge.succeeded", {"id": "ch_1"}, NOW)).json()["outcome"]
        == "ignored"
    )


def test_upgrading_by_webhook_resumes_a_paused_starter(
    client, key, organization, small_starter, stripe_api, django_capture_on_commit_callbacks
):
    post(client, "/v1/traces/batch", {"traces": [span() for _ in range(12)]}, key)
    persist_usage()
    error_of(post(client, "/v1/traces", span(), key), 429, "quota_exceeded")

    Subscription.objects.filter(organization=organization).update(stripe_customer_id="cus_1")
    created = stripe_event("evt_g", "customer.subscription.created", subscription_object(organization), NOW)
    with django_capture_on_commit_callbacks(execute=True):
        assert send_event(client, created).status_code == 200
    assert usage.quota_exceeded(organization.pk) is None  # resumed at once, not at the next task run
    assert post(client, "/v1/traces", span(), key).status_code == 202
