"""The organization billing page: who sees it, plan, usage and quota banner, subscription status,
and the Stripe Checkout and Customer Portal buttons against the local fake of the Stripe API."""

from __future__ import annotations

import re

import pytest
import redis
from django.conf import settings as django_settings
from django.urls import reverse

from apps.billing import usage
from apps.billing.models import Subscription
from apps.billing.usage import Exceeded, exceeded_publish
from tests.factories import MembershipFactory, OrganizationFactory, SubscriptionFactory, UsageCounterFactory
from tests.fakes.stripe_api import fake_stripe

pytestmark = pytest.mark.django_db

PRICE_GROWTH = "price_growth_test"
PRICE_SCALE = "price_scale_test"
SELF_HOSTED = (
    "Billing is not configured on this installation; limits come from the plan assigned in the admin"
)


def _clear_redis() -> None:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = list(client.scan_iter("untrace:usage:*")) + [usage.EXCEEDED_KEY]
    client.delete(*keys)
    client.close()
    usage.forget_cache()


@pytest.fixture(autouse=True)
def _billing_state(settings):
    settings.UNTRACE_DEFAULT_PLAN = "starter"
    settings.STRIPE_SECRET_KEY = ""
    settings.UNTRACE_PUBLIC_URL = "https://untrace.example.com"
    _clear_redis()
    yield
    _clear_redis()


@pytest.fixture
def stripe_api(settings):
    with fake_stripe() as fake:
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_PRICE_GROWTH = PRICE_GROWTH
        settings.STRIPE_PRICE_SCALE = PRICE_SCALE
        settings.STRIPE_API_BASE = fake.url
        yield fake


@pytest.fixture
def organization(project):
    return project.organization


def page_url(organization, name="billing"):
    return reverse(f"dashboard:{name}", args=[organization.pk])


def signed_in(client, organization, role):
    user = MembershipFactory(organization=organization, role=role).user
    client.force_login(user)
    return user


def text_of(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def banner(response, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</div>', text_of(response))
    assert match, f"no #{element_id} in the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


# --- who may see it ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("admin", 200), ("member", 403), ("viewer", 403)]
)
def test_owners_and_admins_see_the_page_others_get_403(client, organization, role, status):
    signed_in(client, organization, role)

    assert client.get(page_url(organization)).status_code == status


@pytest.mark.parametrize("name", ["billing-checkout", "billing-portal"])
@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_cannot_start_checkout_or_portal(client, organization, stripe_api, name, role):
    signed_in(client, organization, role)

    assert client.post(page_url(organization, name), {"plan": "growth"}).status_code == 403
    assert stripe_api.calls == []


@pytest.mark.parametrize("name", ["billing", "billing-checkout", "billing-portal"])
def test_another_organization_answers_404(client, organization, stripe_api, name):
    signed_in(client, OrganizationFactory(), "owner")  # an owner, but of another organization

    response = (
        client.post(page_url(organization, name)) if name != "billing" else client.get(page_url(organization))
    )

    assert response.status_code == 404
    assert stripe_api.calls == []


def test_signed_out_visitors_are_sent_to_sign_in(client, organization):
    response = client.get(page_url(organization))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_billing_tab_only_for_owners_and_admins(client, organization):
    signed_in(client, organization, "member")
    members = text_of(client.get(reverse("dashboard:members", args=[organization.pk])))
    assert page_url(organization) not in members

    signed_in(client, organization, "admin")
    members = text_of(client.get(reverse("dashboard:members", args=[organization.pk])))
    assert f'href="{page_url(organization)}"' in members


# --- content ------------------------------------------------------------------------------------


def test_plan_limits_and_usage_of_this_month(client, organization):
    signed_in(client, organization, "owner")
    UsageCounterFactory(organization=organization, traces=12_300)

    response = client.get(page_url(organization))

    body = text_of(response)
    assert response.status_code == 200
    assert '<strong>Starter</strong> <span class="muted">Free</span>' in body
    assert "<dt>Traces a month</dt><dd>100,000</dd>" in body
    assert "<dt>Destinations</dt><dd>2</dd>" in body
    assert "<dt>Retention</dt><dd>7 days</dd>" in body
    assert '12,300 of 100,000 <span class="muted">(12.3 %)</span>' in body
    assert 'aria-valuenow="12"' in body
    assert 'id="subscription-status">Active<' in body
    assert 'id="quota-banner"' not in body
    assert 'aria-current="page" class="current">Billing</a>' in body


def test_custom_limits_replace_the_plans(client, organization):
    signed_in(client, organization, "owner")
    SubscriptionFactory(organization=organization, plan="growth", custom_monthly_traces=50_000_000)

    body = text_of(client.get(page_url(organization)))

    assert "<dt>Traces a month</dt><dd>50,000,000</dd>" in body
    assert "Limits agreed for" in body


def test_no_usage_yet_says_what_to_do(client, organization):
    signed_in(client, organization, "owner")

    body = text_of(client.get(page_url(organization)))

    assert "No traces yet this month. Send some with a key" in body


@pytest.mark.parametrize(
    ("traces", "level", "text"),
    [
        (80_000, "near", "80 % of this month's included traces are used. Ingest pauses past 110 %."),
        (100_000, "limit", "100 % of this month's included traces are used. Ingest pauses past 110 % until"),
    ],
)
def test_quota_banner_at_80_and_100_percent(client, organization, traces, level, text):
    signed_in(client, organization, "owner")
    UsageCounterFactory(organization=organization, traces=traces)
    SubscriptionFactory(
        organization=organization, plan="starter", warned_percent=80, warned_month=usage.month_start()
    )

    response = client.get(page_url(organization))

    assert f'data-level="{level}"' in text_of(response)
    assert banner(response, "quota-banner").startswith(text)
    assert "The owners were emailed when usage reached 80 %." in text_of(response)


def test_paused_ingest_is_an_alert(client, organization):
    signed_in(client, organization, "owner")
    UsageCounterFactory(organization=organization, traces=120_000)
    exceeded_publish({str(organization.pk): Exceeded(plan="starter", limit=100_000, used=120_000)})

    response = client.get(page_url(organization))

    assert 'data-level="paused"' in text_of(response)
    assert banner(response, "quota-banner").startswith("Ingest is paused.")


def test_a_plan_without_a_pause_says_ingest_goes_on(client, organization):
    signed_in(client, organization, "owner")
    SubscriptionFactory(organization=organization, plan="growth")
    UsageCounterFactory(organization=organization, traces=10_000_000)

    response = client.get(page_url(organization))

    assert "Ingest keeps accepting traces; consider a larger plan." in banner(response, "quota-banner")


# --- self-hosted: no Stripe -------------------------------------------------------------------------


def test_without_stripe_keys_the_page_says_so_and_has_no_buttons(client, organization):
    signed_in(client, organization, "owner")

    body = text_of(client.get(page_url(organization)))

    assert SELF_HOSTED in body
    assert "Upgrade to" not in body
    assert "Manage payment methods and invoices" not in body
    assert page_url(organization, "billing-checkout") not in body
    assert page_url(organization, "billing-portal") not in body


@pytest.mark.parametrize("name", ["billing-checkout", "billing-portal"])
def test_without_stripe_keys_a_forged_post_answers_501(client, organization, name):
    signed_in(client, organization, "owner")

    response = client.post(page_url(organization, name), {"plan": "growth"})

    assert response.status_code == 501
    assert banner(response, "billing-error").startswith(
        "Billing is not enabled on this installation (STRIPE_SECRET_KEY is not set)"
    )


# --- Stripe Checkout ----------------------------------------------------------------------------------


def test_upgrade_buttons_for_the_larger_plans(client, organization, stripe_api):
    signed_in(client, organization, "owner")

    body = text_of(client.get(page_url(organization)))

    assert SELF_HOSTED not in body
    assert '<button type="submit">Upgrade to Growth</button>' in body
    assert '<button type="submit">Upgrade to Scale</button>' in body
    assert "$99 / month" in body and "$499 / month" in body
    assert "Manage payment methods and invoices" not in body  # no Stripe customer yet


def test_growth_offers_only_scale(client, organization, stripe_api):
    signed_in(client, organization, "owner")
    SubscriptionFactory(organization=organization, plan="growth")

    body = text_of(client.get(page_url(organization)))

    assert "Upgrade to Scale" in body and "Upgrade to Growth" not in body


def test_upgrade_redirects_to_the_checkout_session_of_the_fake(client, organization, stripe_api):
    owner = signed_in(client, organization, "owner")
    signed_in(client, organization, "admin")  # an admin clicks; the customer is the owner

    response = client.post(page_url(organization, "billing-checkout"), {"plan": "growth"})

    assert response.status_code == 302
    (_, customer), (session_path, session) = stripe_api.calls
    assert customer["email"] == owner.email
    assert session_path == "/v1/checkout/sessions"
    session_id = re.search(r"cs_test_fake\d+", response["Location"]).group(0)
    assert response["Location"] == f"https://checkout.stripe.com/c/pay/{session_id}"
    assert session["line_items[0][price]"] == PRICE_GROWTH
    back = f"https://untrace.example.com{page_url(organization)}"
    assert session["success_url"] == f"{back}?billing=success"
    assert session["cancel_url"] == f"{back}?billing=canceled"
    billing = Subscription.objects.get(organization=organization)
    assert billing.stripe_customer_id == customer_id_of(stripe_api)


def customer_id_of(stripe_api) -> str:
    return stripe_api.calls[1][1]["customer"]


@pytest.mark.parametrize(
    ("data", "status"),
    [({"plan": "enterprise"}, 400), ({"plan": "starter"}, 400), ({}, 400), ({"plan": "GROWTH"}, 400)],
)
def test_checkout_of_an_unknown_plan_answers_400(client, organization, stripe_api, data, status):
    signed_in(client, organization, "owner")

    response = client.post(page_url(organization, "billing-checkout"), data)

    assert response.status_code == status
    assert banner(response, "billing-error") == "Choose the Growth or Scale plan to upgrade to."
    assert stripe_api.calls == []


def test_checkout_refuses_get(client, organization, stripe_api):
    signed_in(client, organization, "owner")

    assert client.get(page_url(organization, "billing-checkout")).status_code == 405


def test_a_subscribed_organization_gets_the_portal_not_checkout(client, organization, stripe_api):
    signed_in(client, organization, "owner")
    SubscriptionFactory(
        organization=organization, plan="growth", stripe_customer_id="cus_42", stripe_subscription_id="sub_42"
    )

    body = text_of(client.get(page_url(organization)))
    assert "Upgrade to" not in body
    assert "Manage payment methods and invoices</button>" in body
    assert "pays for the Growth plan through Stripe" in body

    refused = client.post(page_url(organization, "billing-checkout"), {"plan": "scale"})
    assert refused.status_code == 409
    assert banner(refused, "billing-error").startswith("This organization already has a Growth subscription")
    assert stripe_api.calls == []


def test_portal_redirects_to_the_portal_session_of_the_fake(client, organization, stripe_api):
    signed_in(client, organization, "owner")
    SubscriptionFactory(organization=organization, plan="growth", stripe_customer_id="cus_42")

    response = client.post(page_url(organization, "billing-portal"))

    assert response.status_code == 302
    ((path, form),) = stripe_api.calls
    assert path == "/v1/billing_portal/sessions"
    assert form["customer"] == "cus_42"
    assert form["return_url"] == f"https://untrace.example.com{page_url(organization)}?billing=portal"
    assert re.fullmatch(r"https://billing\.stripe\.com/p/session/test_fake\d+", response["Location"])


def test_portal_without_a_customer_answers_409(client, organization, stripe_api):
    signed_in(client, organization, "owner")

    response = client.post(page_url(organization, "billing-portal"))

    assert response.status_code == 409
    assert banner(response, "billing-error").startswith("This organization has no Stripe customer yet")
    assert stripe_api.calls == []


def test_stripe_refusing_answers_502_with_its_message(client, organization, stripe_api):
    signed_in(client, organization, "owner")
    stripe_api.fail_with = (400, "No such price: 'price_growth_test'")

    response = client.post(page_url(organization, "billing-checkout"), {"plan": "growth"})

    assert response.status_code == 502
    assert banner(response, "billing-error") == (
        "Stripe refused the request: No such price: &#x27;price_growth_test&#x27;"
    )


def test_past_due_asks_for_a_payment_method(client, organization, stripe_api):
    signed_in(client, organization, "owner")
    SubscriptionFactory(
        organization=organization,
        plan="growth",
        status="past_due",
        stripe_customer_id="cus_42",
        stripe_subscription_id="sub_42",
    )

    response = client.get(page_url(organization))

    assert 'id="subscription-status">Past due<' in text_of(response)
    assert banner(response, "payment-banner").startswith("The subscription is past due")


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        ("success", "Thank you: your subscription is being set up."),
        ("canceled", "Checkout was canceled; nothing changed."),
        ("portal", "Back from the Stripe Customer Portal."),
    ],
)
def test_the_return_from_stripe_is_told(client, organization, stripe_api, outcome, text):
    signed_in(client, organization, "owner")

    response = client.get(page_url(organization) + f"?billing={outcome}")

    assert banner(response, "billing-return").startswith(text)


def test_an_unknown_return_is_ignored(client, organization):
    signed_in(client, organization, "owner")

    assert 'id="billing-return"' not in text_of(client.get(page_url(organization) + "?billing=<b>"))
