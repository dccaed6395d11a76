"""The five-minute path: sign up, create a key, add a webhook destination, test
the connection, send a test trace from the dashboard, and see it delivered."""

from pathlib import Path

import pytest

from tests.fakes.sink import running_sink
from untrace.celery import app

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def tasks_in_process(settings):
    """Routing and delivery run where they are enqueued (no worker process here)."""
    settings.UNTRACE_DELIVERY_LINGER_SECONDS = 0
    settings.UNTRACE_DELIVERY_INLINE_MIN_SPANS = 1
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def shot(page, tmp_path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_sign_up_to_a_delivered_trace(page, live_server, settings, tmp_path, tasks_in_process):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    with running_sink(SECRET) as sink:
        page.goto(f"{live_server.url}/")
        page.get_by_role("link", name="Create your account").click()
        page.fill("input[name=email]", "first@example.com")
        page.fill("input[name=password1]", "a-long-enough-passphrase")
        page.fill("input[name=password2]", "a-long-enough-passphrase")
        page.get_by_role("button", name="Sign Up").click()
        page.get_by_role("heading", name="Get your first trace delivered").wait_for()
        shot(page, tmp_path, "overview-new")

        page.get_by_role("navigation", name="Project").get_by_role("link", name="Keys & setup").click()
        page.fill("input[name=name]", "backend")
        page.get_by_role("button", name="Create key").click()
        assert page.locator("#new-key-secret").inner_text().startswith("ut_")

        page.get_by_role("navigation", name="Project").get_by_role("link", name="Destinations").click()
        page.get_by_label("Platform").select_option("webhook")
        page.get_by_label("Url *").wait_for()
        page.get_by_label("Name *").fill("my receiver")
        page.get_by_label("Url *").fill(sink.url)
        page.get_by_label("Secret").fill(SECRET)
        shot(page, tmp_path, "destinations-add")
        page.get_by_role("button", name="Add destination").click()
        page.get_by_role("heading", name="my receiver").wait_for()

        page.get_by_role("button", name="Test connection").click()
        page.get_by_text("Connected").wait_for()
        shot(page, tmp_path, "destination-detail")

        page.get_by_role("button", name="Send a test trace").click()
        page.get_by_role("heading", name="Deliveries").wait_for()
        for _ in range(30):  # routing and delivery finish in the background
            if page.locator("td .badge.delivered").count():
                break
            page.wait_for_timeout(500)
            page.reload()
        assert page.locator("td .badge.delivered").count() == 1
        shot(page, tmp_path, "deliveries")
        assert len(sink.delivered) == 2  # the connection test and the test trace

        # The explorer shows the trace and where it was delivered.
        page.get_by_role("navigation", name="Project").get_by_role("link", name="Traces").click()
        page.get_by_role("link", name="Test trace from the dashboard").click()
        page.get_by_role("heading", name="Deliveries").wait_for()
        assert page.locator(".badge.delivered").count() >= 1
        assert "my receiver" in page.content()
        shot(page, tmp_path, "trace-delivered")

        page.get_by_role("navigation", name="Project").get_by_role("link", name="Overview").click()
        page.get_by_role("heading", name="Last 24 hours").wait_for()
        assert page.locator("#onboarding").count() == 0  # the checklist is done
        shot(page, tmp_path, "overview")
