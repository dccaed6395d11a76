"""A newcomer turns on two-factor authentication, signs out, and signs in again with a TOTP code."""

import time
from pathlib import Path

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from django.core.cache import cache

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "a-long-enough-passphrase"


def _shot(page, tmp_path, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"mfa-{name}.png"), full_page=True)


def _code(secret: str) -> str:
    if time.time() % 30 > 27:  # not at the edge of a 30-second period
        time.sleep(30 - time.time() % 30 + 0.2)
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def test_activate_totp_and_sign_in_with_it(page, live_server, settings, tmp_path):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    cache.clear()
    mail.outbox.clear()

    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Create your account").click()
    page.fill("input[name=email]", "careful@example.com")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    page.get_by_role("heading", name="Get your first trace delivered").wait_for()

    # Two-factor authentication needs a verified address: follow the emailed link.
    link = next(w for w in mail.outbox[-1].body.split() if "/accounts/confirm-email/" in w)
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()

    page.get_by_role("banner").get_by_role("link", name="Account security").click()
    page.get_by_role("heading", name="Account security", level=1).wait_for()
    assert "Off" in page.locator(".mfa-head .badge").inner_text()
    _shot(page, tmp_path, "index")

    page.get_by_role("link", name="Activate authenticator app").click()
    page.fill("input[name=password]", PASSWORD)  # confirm access first
    _shot(page, tmp_path, "confirm-access")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Activate authenticator app").wait_for()
    assert page.get_by_role("img", name="QR code to add Untrace to your authenticator app").is_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    _shot(page, tmp_path, "activate")
    page.get_by_label("Code from the app").fill(_code(secret))
    page.get_by_role("button", name="Activate").click()

    page.get_by_role("heading", name="Recovery codes").wait_for()
    assert page.locator("#recovery-codes li").count() == 10
    _shot(page, tmp_path, "recovery-codes")

    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "careful@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()

    page.get_by_role("heading", name="Two-factor authentication").wait_for()
    page.get_by_label("Authentication code").fill(f"{(int(_code(secret)) + 1) % 1_000_000:06}")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="Incorrect code.").wait_for()
    _shot(page, tmp_path, "authenticate")

    page.get_by_label("Authentication code").fill(_code(secret))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Get your first trace delivered").wait_for()
    page.get_by_role("banner").get_by_role("link", name="Account security").click()
    assert "On" in page.locator(".mfa-head .badge").inner_text()
