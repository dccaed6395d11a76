"""An owner creates a signed-webhook endpoint, copies its secret, sends a signed batch, rotates the
secret, and turns on PII redaction for every destination."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from apps.routing.services import active_document
from apps.traces.models import Span
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, tmp_path, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"settings-{name}.png"), full_page=True)


def signed_post(url: str, secret: str, span_id: str) -> httpx.Response:
    body = json.dumps({"traces": [{"id": span_id, "model": "gpt-4o-mini"}]})
    message_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=10)


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_webhook_endpoint_and_pii_defaults(page, live_server, settings, tmp_path):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    project = ProjectFactory(name="Checkout")
    owner = MembershipFactory(organization=project.organization, role="owner").user

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda address: "/accounts/login" not in address)

    page.goto(f"{live_server.url}/projects/{project.pk}/overview")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Settings").click()
    page.get_by_role("heading", name="Signed-webhook ingest").wait_for()
    page.get_by_text("No webhook endpoints yet").wait_for()
    shot(page, tmp_path, "empty")

    # Create an endpoint; its secret is shown once, and the Copy button puts it on the clipboard.
    page.get_by_label("Name *").fill("support bot")
    page.get_by_role("button", name="Create endpoint").click()
    page.get_by_text("copy it now, it will not be shown again").wait_for()
    page.get_by_role("button", name="Copy secret").click()
    page.get_by_text("Copied.").wait_for()
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == page.locator("#new-webhook-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    url = page.locator("tr[data-endpoint] .settings-url").inner_text().strip()
    assert url.startswith(f"{live_server.url}/v1/webhooks/")
    shot(page, tmp_path, "webhook-created")

    response = signed_post(url, secret, "span-webhook-1")
    assert response.status_code == 202, response.text
    assert Span.objects.filter(project=project, span_id="span-webhook-1").exists()

    # The page's own examples work as printed.
    example = page.locator("#example-python").inner_text()
    env = {**os.environ, "UNTRACE_WEBHOOK_SECRET": secret}
    run = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.startswith("202 "), run.stdout + run.stderr
    if shutil.which("curl") and shutil.which("openssl"):
        curl = page.locator("#example-curl").inner_text()
        run = subprocess.run(["bash", "-c", curl], env=env, capture_output=True, text=True, timeout=60)
        assert '"accepted"' in run.stdout and "span-1" in run.stdout, run.stdout + run.stderr

    page.goto(f"{live_server.url}/projects/{project.pk}/settings")
    assert secret not in page.content()  # shown once
    assert "never" not in page.locator("tr[data-endpoint]").inner_text()  # last received is set

    # Rotate: a new secret, shown once; the old one keeps verifying for 24 hours.
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate secret of support bot").click()
    page.get_by_text("The previous secret keeps verifying for 24 hours").wait_for()
    rotated = page.locator("#new-webhook-secret").inner_text().strip()
    assert rotated.startswith("whsec_") and rotated != secret
    shot(page, tmp_path, "webhook-rotated")
    assert signed_post(url, rotated, "span-webhook-2").status_code == 202
    assert signed_post(url, secret, "span-webhook-3").status_code == 202

    # PII defaults for every destination: one new routing version.
    pii = page.locator("#pii-form")
    pii.get_by_label("Redact personal data before sending to any destination").check()
    pii.get_by_label("Hash:", exact=False).check()
    pii.get_by_label("GDPR / CCPA preset").check()
    pii.get_by_role("button", name="Save PII defaults").click()
    page.get_by_text("PII defaults saved as routing version 1.").wait_for()
    live = page.locator("#pii-live")
    assert "(routing version 1)" in live.inner_text()
    assert "GDPR preset" in live.inner_text()
    version, document = active_document(project.pk)
    assert version == 1
    assert document["transformations"][0]["mode"] == "hash"
    assert document["transformations"][0]["preset"] == "gdpr"
    shot(page, tmp_path, "pii-on")

    page.get_by_role("link", name="Routing version history").click()
    row = page.locator("tr[data-version='1']")
    row.get_by_text("Turned on PII redaction for every destination").wait_for()
    assert "live" in row.inner_text()
    shot(page, tmp_path, "pii-version-history")
