"""A newcomer signs up, opens the billing page from the organization switcher (by keyboard) and
starts Checkout, creates a key and finds it in the audit log, creates a second organization and
switches back; the styled sign-in page after signing out."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache

from apps.accounts.models import Organization, Project
from apps.audit.services import audit_record
from tests.factories import UsageCounterFactory
from tests.fakes.stripe_api import fake_stripe

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "a-long-enough-passphrase"


def shot(page, tmp_path, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.fixture
def stripe_api(settings):
    with fake_stripe() as fake:
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_PRICE_GROWTH = "price_growth_test"
        settings.STRIPE_PRICE_SCALE = "price_scale_test"
        settings.STRIPE_API_BASE = fake.url
        yield fake


def open_switcher(page):
    """Open the organization menu with the keyboard, as a keyboard user would."""
    page.locator("#org-switcher summary").focus()
    page.keyboard.press("Enter")
    menu = page.get_by_role("navigation", name="Organizations and projects")
    menu.wait_for()
    return menu


def test_billing_audit_log_and_switcher(page, live_server, settings, stripe_api, tmp_path):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    settings.UNTRACE_DEFAULT_PLAN = "starter"
    settings.UNTRACE_PUBLIC_URL = live_server.url
    cache.clear()

    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    page.get_by_role("heading", name="Get your first trace delivered").wait_for()
    first = Organization.objects.get(memberships__user__email="newcomer@example.com")
    UsageCounterFactory(organization=first, traces=85_000)

    # One organization: its name and project in the top bar. Billing through the menu.
    assert page.locator("#org-switcher .switcher-org").inner_text() == "newcomer's organization"
    menu = open_switcher(page)
    assert menu.get_by_role("link", name="Default").get_attribute("aria-current") == "page"
    page.keyboard.press("Escape")
    assert not menu.is_visible()
    menu = open_switcher(page)
    menu.get_by_role("link", name="Billing").click()
    page.get_by_role("heading", name="Usage this month").wait_for()
    assert "85,000 of 100,000" in page.locator("#usage").inner_text()
    assert "85 % of this month's included traces are used." in page.locator("#quota-banner").inner_text()
    assert page.get_by_role("meter").get_attribute("aria-valuenow") == "85"
    shot(page, tmp_path, "billing")

    # On a phone: nothing wider than the screen, the menu included.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, tmp_path, "billing-phone")
    box = open_switcher(page).bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.keyboard.press("Escape")
    page.set_viewport_size({"width": 1280, "height": 720})

    # Upgrade: the fake Stripe answers with a Checkout URL, which the browser is sent to.
    page.route(
        "https://checkout.stripe.com/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Stripe Checkout</h1>"),
    )
    page.get_by_role("button", name="Upgrade to Growth").click()
    page.get_by_role("heading", name="Stripe Checkout").wait_for()
    assert page.url.startswith("https://checkout.stripe.com/c/pay/cs_test_fake")
    assert [path for path, _ in stripe_api.calls] == ["/v1/customers", "/v1/checkout/sessions"]
    page.go_back()

    # A key created in Keys & setup is in the audit log, reached from the Settings tab.
    page.goto(f"{live_server.url}/")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Keys & setup").click()
    page.fill("input[name=name]", "ci runner")
    page.check("input[value=ingest]")
    page.get_by_role("button", name="Create key").click()
    assert page.locator("#new-key-secret").inner_text().startswith("ut_")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings sections").get_by_role("link", name="Audit log").click()
    page.get_by_role("heading", name="Audit log").wait_for()
    row = page.locator("tr[data-action='key.created']")
    assert "newcomer@example.com" in row.inner_text() and "ci runner" in row.inner_text()
    page.get_by_label("Action").select_option("key.created")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(lambda address: "audit-log?action=key.created" in address)
    assert page.locator("#audit-rows tr[data-action]").count() == 1
    shot(page, tmp_path, "audit-log")

    # Older events are appended in place by htmx.
    project = Project.objects.get(organization=first)
    for n in range(60):
        audit_record(
            action="destination.updated",
            organization_id=first.pk,
            project_id=project.pk,
            details={"name": f"sink {n}", "changed": ["url"]},
        )
    page.get_by_role("link", name="Clear filters").click()
    rows = page.locator("#audit-rows tr[data-action]")
    rows.nth(49).wait_for()
    assert rows.count() == 50
    page.get_by_role("link", name="Load older events").click()
    rows.nth(60).wait_for()
    assert rows.count() == 61 and "/audit-log" in page.url and "before=" not in page.url
    assert page.locator("#audit-more").count() == 0

    # A second organization from the menu, then back to the first one.
    open_switcher(page).get_by_role("link", name="New organization").click()
    page.get_by_label("Organization name *").fill("Side project")
    page.get_by_role("button", name="Create organization").click()
    page.get_by_text("“Side project” created, with the project “Default”.").wait_for()
    assert page.locator("#org-switcher .switcher-org").inner_text() == "Side project"
    assert page.locator("#org-switcher .switcher-project").inner_text() == "Default"
    menu = open_switcher(page)
    entries = menu.locator(".switcher-entry")
    assert entries.count() == 2
    shot(page, tmp_path, "org-switcher")
    back = entries.filter(has_text="newcomer's organization").get_by_role("link", name="Default")
    target = back.get_attribute("href")
    back.click()
    page.wait_for_url(f"{live_server.url}{target}")
    assert page.locator("#org-switcher .switcher-org").inner_text() == "newcomer's organization"

    # Signed out: the sign-in page in the product's card, with the error next to the form.
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("heading", name="Sign In").wait_for()
    shot(page, tmp_path, "sign-in")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign In").click()
    page.get_by_role("alert").filter(has_text="password you specified are not correct").wait_for()
    shot(page, tmp_path, "sign-in-error")
