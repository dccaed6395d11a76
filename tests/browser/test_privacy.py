"""An owner erases a user from the Settings tab (confirming the dialog), then deletes the
organization from its Members page by typing its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.accounts.models import Organization
from apps.traces.models import Span
from apps.traces.schema import SpanLimits, decode_span
from apps.traces.store import spans_store
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, tmp_path, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"privacy-{name}.png"), full_page=True)


def test_erase_a_user_then_delete_the_organization(page, live_server, settings, tmp_path):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    project = ProjectFactory(name="Support")
    organization = project.organization
    owner = MembershipFactory(organization=organization, role="owner").user
    raw = [{"id": "p1", "user_id": "dana"}, {"id": "p2", "user_id": "dana"}, {"id": "p3", "user_id": "eve"}]
    spans_store(
        project_id=project.pk, spans=[decode_span(s, limits=SpanLimits()) for s in raw], source="http"
    )

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda address: "/accounts/login" not in address)

    page.goto(f"{live_server.url}/projects/{project.pk}/settings#privacy")
    page.get_by_role("heading", name="Privacy: erase a user or session").wait_for()
    form = page.locator("#privacy-form")
    form.get_by_label("User id").check()
    form.get_by_label("Identifier *").fill("dana")
    page.once("dialog", lambda dialog: dialog.accept())
    form.get_by_role("button", name="Erase").click()
    page.locator("#erasure-result").wait_for()
    assert "2 spans deleted" in page.locator("#erasure-result").inner_text()
    shot(page, tmp_path, "erased")
    assert set(Span.objects.filter(project=project).values_list("span_id", flat=True)) == {"p3"}

    page.goto(f"{live_server.url}/orgs/{organization.pk}/members")
    delete_form = page.locator("#organization-delete-form")
    delete_form.locator("input[name=confirm_name]").fill("not the name")
    delete_form.get_by_role("button", name="Delete this organization").click()
    page.get_by_text("That is not the organization's name; nothing was deleted.").wait_for()
    shot(page, tmp_path, "delete-refused")
    assert Organization.objects.filter(pk=organization.pk).exists()

    page.locator("#organization-delete-form input[name=confirm_name]").fill(organization.name)
    page.get_by_role("button", name="Delete this organization").click()
    page.get_by_text("and all of its data were deleted").wait_for()
    shot(page, tmp_path, "deleted")
    assert not Organization.objects.filter(pk=organization.pk).exists()
    assert not Span.objects.filter(project_id=project.pk).exists()
