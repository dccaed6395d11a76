"""A newcomer signs up, gets a project, creates a key shown once, uses it, revokes it."""

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_signup_to_first_key(page, live_server, settings, tmp_path):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Create your account").click()
    page.fill("input[name=email]", "newcomer@example.com")
    page.fill("input[name=password1]", "a-long-enough-passphrase")
    page.fill("input[name=password2]", "a-long-enough-passphrase")
    page.get_by_role("button", name="Sign Up").click()

    page.get_by_role("heading", name="Get your first trace delivered").wait_for()
    assert "newcomer's organization / Default" in page.content()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Keys & setup").click()
    page.get_by_role("heading", name="API keys").wait_for()

    page.fill("input[name=name]", "my laptop")
    page.check("input[value=read]")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("ut_")
    page.screenshot(path=str(tmp_path / "key-created.png"), full_page=True)

    api = httpx.get(f"{live_server.url}/v1/keys", headers={"X-Untrace-Key": secret}, timeout=10)
    assert api.status_code == 200
    assert [k["name"] for k in api.json()["results"]] == ["my laptop"]

    page.reload()
    assert secret not in page.content()  # shown once

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("cell", name="revoked").wait_for()
    refused = httpx.get(f"{live_server.url}/v1/keys", headers={"X-Untrace-Key": secret}, timeout=10)
    assert refused.status_code == 401
