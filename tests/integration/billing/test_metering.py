"""Traces above a paid plan's included volume, reported to (a local fake of) Stripe as
billing meter events: once, exactly, and never twice when an answer is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.billing.metering import overage_report
from apps.billing.models import OverageReport, Subscription
from apps.billing.usage import month_start
from tests.factories import SubscriptionFactory, UsageCounterFactory
from tests.integration.billing.conftest import PRICE_GROWTH
from tests.integration.ingest.helpers import post, span
from workers.tasks.billing import persist_usage, report_overage

pytestmark = pytest.mark.django_db

OVERAGE_GROWTH = "price_growth_overage_test"


@pytest.fixture
def metered(stripe_api, settings):
    settings.STRIPE_PRICE_GROWTH_OVERAGE = OVERAGE_GROWTH
    settings.STRIPE_METER_EVENT_NAME = "untrace_traces"
    return stripe_api


def paid(organization, *, included=100, plan="growth", status="active", customer="cus_metered"):
    return SubscriptionFactory(
        organization=organization,
        plan=plan,
        status=status,
        stripe_customer_id=customer,
        stripe_subscription_id="sub_metered" if customer else "",
        custom_monthly_traces=included,
    )


def events(fake) -> list[dict]:
    return list(fake.meter_events.values())


def test_ingested_traces_above_the_plan_become_one_meter_event(client, key, organization, metered):
    paid(organization, included=2)
    post(client, "/v1/traces/batch", {"traces": [span() for _ in range(5)]}, key)
    persist_usage()
    assert report_overage() == 1

    (event,) = events(metered)
    assert event["event_name"] == "untrace_traces"
    assert event["payload"] == {"stripe_customer_id": "cus_metered", "value": "3"}
    assert event["identifier"] == f"{organization.pk}-{month_start():%Y%m}-3"
    assert abs(event["timestamp"] - datetime.now(UTC).timestamp()) < 60
    report = OverageReport.objects.get(organization=organization)
    assert (report.reported, report.pending) == (3, 3)


def test_only_new_overage_is_reported_and_nothing_when_nothing_changed(organization, metered):
    paid(organization, included=100)
    counter = UsageCounterFactory(organization=organization, traces=150)
    assert overage_report().reported == 1
    assert overage_report().reported == 0  # nothing new

    counter.traces = 180
    counter.save()
    assert overage_report().reported == 1
    assert [e["payload"]["value"] for e in events(metered)] == ["50", "30"]
    assert OverageReport.objects.get(organization=organization).reported == 80


def test_usage_within_the_plan_sends_nothing(organization, metered):
    paid(organization, included=100)
    UsageCounterFactory(organization=organization, traces=100)
    assert overage_report().reported == 0
    assert metered.calls == []


@pytest.mark.parametrize(
    "subscription",
    [
        {"plan": "starter"},  # starter stops at 110%: overage is refused, never billed
        {"plan": "growth", "status": "canceled"},
        {"plan": "growth", "customer": ""},  # no Stripe customer (plan set in the admin)
        {"plan": "enterprise", "included": None},  # unlimited
    ],
)
def test_organizations_that_are_not_billed_for_overage_are_skipped(organization, metered, subscription):
    paid(organization, **subscription)
    UsageCounterFactory(organization=organization, traces=10_000)
    assert overage_report().reported == 0
    assert metered.meter_events == {}


def test_without_stripe_nothing_is_reported(organization, settings):
    settings.STRIPE_SECRET_KEY = ""
    paid(organization, included=1)
    UsageCounterFactory(organization=organization, traces=10)
    assert overage_report().reported == 0
    assert not OverageReport.objects.exists()


def test_a_lost_answer_is_resent_unchanged_and_billed_once(organization, metered):
    paid(organization, included=100)
    counter = UsageCounterFactory(organization=organization, traces=150)
    metered.lose_answers = 2  # the request and the library's one retry
    run = overage_report()
    assert (run.reported, run.failed) == (0, 1)
    report = OverageReport.objects.get(organization=organization)
    assert (report.reported, report.pending) == (0, 50)

    counter.traces = 170  # more usage before the next run: the pending total goes first
    counter.save()
    assert overage_report().reported == 1
    assert [e["payload"]["value"] for e in events(metered)] == ["50"]  # kept once by Stripe
    assert overage_report().reported == 1
    assert [e["payload"]["value"] for e in events(metered)] == ["50", "20"]
    assert OverageReport.objects.get(organization=organization).reported == 70


def test_a_refusal_is_retried_on_the_next_run(organization, metered):
    paid(organization, included=100)
    UsageCounterFactory(organization=organization, traces=101)
    metered.fail_with = (400, "No such customer: 'cus_metered'")
    assert overage_report().failed == 1
    metered.fail_with = None
    assert overage_report().reported == 1
    assert [e["payload"]["value"] for e in events(metered)] == ["1"]


def test_last_months_final_overage_is_reported_early_in_the_new_month(organization, metered):
    paid(organization, included=100)
    now = datetime.now(UTC).replace(day=1, hour=1, minute=0, second=0, microsecond=0)
    last_month = month_start(now - timedelta(days=1))
    UsageCounterFactory(organization=organization, month=last_month, traces=130)
    assert overage_report(now).reported == 1
    (event,) = events(metered)
    assert event["payload"]["value"] == "30"
    assert event["timestamp"] == int(now.replace(hour=0).timestamp()) - 1  # last second of last month

    later = now + timedelta(days=5)
    assert overage_report(later).reported == 0  # past the catch-up days: last month is closed


def test_checkout_adds_the_metered_overage_price(api, metered):
    response = api.post("/v1/billing/checkout", {"plan": "growth"}, format="json")
    assert response.status_code == 200, response.content
    _, session = metered.calls[-1]
    assert session["line_items[0][price]"] == PRICE_GROWTH
    assert session["line_items[0][quantity]"] == "1"
    assert session["line_items[1][price]"] == OVERAGE_GROWTH
    assert "line_items[1][quantity]" not in session


def test_a_subscription_with_its_overage_item_first_still_maps_to_its_plan(client, organization, metered):
    from tests.integration.billing.conftest import send_event, stripe_event
    from tests.integration.billing.test_stripe import NOW, subscription_object

    obj = subscription_object(organization)
    flat = obj["items"]["data"][0]
    overage = {**flat, "id": "si_2", "price": {"id": OVERAGE_GROWTH, "object": "price"}}
    obj["items"]["data"] = [overage, flat]
    assert (
        send_event(client, stripe_event("evt_m1", "customer.subscription.updated", obj, NOW)).status_code
        == 200
    )
    assert Subscription.objects.get(organization=organization).plan.code == "growth"
