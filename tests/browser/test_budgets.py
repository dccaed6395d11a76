"""An owner creates a budget in the project settings (after fixing a field error), copies its
webhook secret, and sees the spend bar fill as traced cost arrives."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from apps.budgets.models import Budget
from tests.factories import ApiKeyFactory, MembershipFactory, ProjectFactory
from tests.integration.budgets.conftest import _budget_state, ingest_costs, routed  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, tmp_path, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"budgets-{name}.png"), full_page=True)


def test_create_a_budget_and_watch_its_spend(page, live_server, settings, tmp_path):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    project = ProjectFactory(name="Checkout")
    owner = MembershipFactory(organization=project.organization, role="owner").user
    key = ApiKeyFactory(project=project, name="backend")

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda address: "/accounts/login" not in address)

    page.goto(f"{live_server.url}/projects/{project.pk}/settings")
    page.get_by_role("link", name="Budgets").click()
    section = page.locator("#budgets")
    section.get_by_text("No budgets yet: create one below.").wait_for()

    section.get_by_label("Budget name").fill("Monthly LLM")
    section.get_by_label("Amount (USD)").fill("0")
    section.get_by_label("Alert emails").fill("ops@example.com")
    section.get_by_label("Hard stop", exact=False).check()
    section.get_by_role("button", name="Create budget").click()
    error = page.locator("#budget-amount_usd-error")
    error.wait_for()
    assert error.inner_text() == "must be greater than 0"
    shot(page, tmp_path, "field-error")

    section = page.locator("#budgets")
    section.get_by_label("Amount (USD)").fill("10")
    section.get_by_role("button", name="Create budget").click()
    page.get_by_text("Webhook signing secret for “Monthly LLM”: copy it now").wait_for()
    secret = page.locator("#new-budget-secret").inner_text()
    assert secret.startswith("whsec_")
    budget = Budget.objects.get(project=project)
    assert budget.hard_stop and budget.alert_emails == ["ops@example.com"]

    ingest_costs(APIClient(), key.secret, [8.5])
    page.goto(f"{live_server.url}/projects/{project.pk}/settings#budgets")
    spend = page.locator(f"#budget-{budget.pk}-spend")
    assert spend.inner_text() == "$8.50 of $10.00 (85.0 %)"
    bar = page.get_by_role("meter", name="Spend of Monthly LLM")
    assert bar.get_attribute("aria-valuenow") == "85"
    assert page.locator("#new-budget-secret").count() == 0  # shown once
    shot(page, tmp_path, "spend")

    page.get_by_role("link", name="Edit Monthly LLM").click()
    page.locator("#budgets").get_by_label("Amount (USD)").fill("20")
    page.get_by_role("button", name="Save budget").click()
    page.get_by_text("Budget “Monthly LLM” saved.").wait_for()
    assert page.locator(f"#budget-{budget.pk}-spend").inner_text() == "$8.50 of $20.00 (42.5 %)"
