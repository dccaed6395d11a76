"""An owner builds a routing rule visually, dry-runs it on stored traces, saves it and rolls back."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.ingest.limits import span_limits
from apps.routing.services import active_document
from apps.traces.schema import decode_span
from apps.traces.store import spans_store
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, tmp_path, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"rules-{name}.png"), full_page=True)


def test_build_dry_run_save_and_roll_back(page, live_server, settings, tmp_path):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    project = ProjectFactory(name="Checkout")
    owner = MembershipFactory(organization=project.organization, role="owner").user
    langfuse = DestinationFactory(project=project, name="langfuse-prod")
    DestinationFactory(project=project, name="archive")
    spans = [
        decode_span(
            {
                "id": f"span-{i}",
                "trace_id": f"trace-{i}",
                "name": f"chat {model}",
                "model": model,
                "provider": "openai",
                "request": {"messages": [{"role": "user", "content": "hi"}]},
            },
            limits=span_limits(),
        )
        for i, model in enumerate(["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku"])
    ]
    spans_store(project_id=project.pk, spans=spans, source="test")

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda address: "/accounts/login" not in address)

    page.goto(f"{live_server.url}/projects/{project.pk}/rules")
    page.get_by_text("No rules yet").wait_for()
    page.select_option("#id_default_destinations", label="archive (webhook)")
    page.get_by_role("button", name="Save defaults").click()
    page.get_by_text("Defaults saved as version 1.").wait_for()

    page.get_by_role("link", name="New rule").click()
    page.fill("#id_name", "gpt-4 to langfuse")
    row = page.locator(".cond-row").first
    row.get_by_label("Field").select_option("model")
    row.get_by_label("Operator").select_option("glob")
    row.get_by_label("Value").fill("gpt-4*")
    # a second condition row comes from the server and can be removed again
    page.get_by_role("button", name="Add condition").click()
    page.locator(".cond-row").nth(1).wait_for()
    page.locator(".cond-row").nth(1).get_by_label("Field").select_option("tags")
    assert page.locator(".cond-row").nth(1).get_by_label("Tag key / path").is_visible()
    page.locator(".cond-row").nth(1).get_by_role("button", name="Remove this condition").click()
    expect(page.locator(".cond-row")).to_have_count(1)
    page.get_by_label("langfuse-prod").first.check()
    page.fill("#id_sampling_rate", "50")

    page.get_by_role("button", name="Run dry-run").click()
    page.locator("#dry-run-summary").wait_for()
    assert "2 of 3 spans" in page.locator("#dry-run-summary").inner_text()
    assert page.get_by_text("gpt-4 to langfuse (this rule)").count() == 2
    page.locator(".dry-run-target summary").first.click()
    page.get_by_text("Changes (JSON Patch)").first.wait_for()
    shot(page, tmp_path, "builder")
    assert active_document(project.pk)[0] == 1  # the dry-run saved nothing

    page.get_by_role("button", name="Save rule").click()
    page.get_by_text("Rule “gpt-4 to langfuse” saved as version 2.").wait_for()
    assert "model matches “gpt-4*”" in page.content()
    assert "→ langfuse-prod; sample 50 %" in page.content()
    shot(page, tmp_path, "list")
    rule = active_document(project.pk)[1]["rules"][0]
    assert rule["actions"] == {
        "destinations": [str(langfuse.pk)],
        "sampling": {"rate": 0.5, "keep_errors": True},
    }

    page.get_by_role("link", name="Version history").click()
    page.get_by_text("Created rule 'gpt-4 to langfuse'").wait_for()
    page.locator("tr[data-version='2'] summary").click()
    shot(page, tmp_path, "versions")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Roll back to version 1").click()
    page.get_by_text("Rolled back to version 1").wait_for()
    page.get_by_text("No rules yet").wait_for()
    assert "live version 3" in page.content()
