import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in the test thread; the ORM calls
    # the tests make around it are ordinary synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    """A fresh page; any Content-Security-Policy violation on any page it visits fails the test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []

    def watch(message) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", watch)
    yield page
    context.close()
    assert not violations, f"Content-Security-Policy violations: {violations}"
