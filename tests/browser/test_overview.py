"""A team member opens the overview of a project with traffic, reads the trend charts
and switches the window from the last 24 hours to the last 7 days."""

from datetime import timedelta
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from apps.delivery.models import Delivery
from apps.ingest.limits import span_limits
from apps.traces.schema import decode_span
from apps.traces.store import spans_store
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, tmp_path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"overview-{name}.png"), full_page=True)


def traffic(project) -> None:
    now = timezone.now()
    models = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet")
    spans = []
    for i in range(60):  # spread over the last 6 days, a few per few hours
        start = now - timedelta(hours=i * 2.4, minutes=3)
        model = models[i % 3]
        tokens = 200 + 37 * i
        spans.append(
            {
                "id": f"s{i}",
                "trace_id": f"t{i}",
                "name": "answer",
                "provider": "anthropic" if model.startswith("claude") else "openai",
                "model": model,
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(milliseconds=300 + 45 * (i % 9))).isoformat(),
                "response": {
                    "content": "ok",
                    "usage": {"prompt_tokens": tokens - 50, "completion_tokens": 50, "total_tokens": tokens},
                },
                **({"error": {"type": "Timeout", "message": "timed out"}} if i % 7 == 3 else {}),
            }
        )
    spans_store(
        project_id=project.pk, spans=[decode_span(s, limits=span_limits()) for s in spans], source="http"
    )
    destination = DestinationFactory(project=project, name="Langfuse prod")
    for i in range(40):
        finished = now - timedelta(hours=i * 3.5)
        Delivery.objects.create(
            project=project,
            destination=destination,
            role="primary",
            items=[],
            span_count=1,
            status="dead" if i % 6 == 5 else ("rerouted" if i % 11 == 4 else "delivered"),
            next_attempt_at=finished,
            expires_at=finished,
            finished_at=finished,
        )


def test_read_the_trends_and_switch_the_window(page, live_server, tmp_path):
    project = ProjectFactory(name="Support bot")
    owner = MembershipFactory(organization=project.organization, role="owner").user
    EmailAddress.objects.create(user=owner, email=owner.email, verified=True, primary=True)
    traffic(project)

    page.goto(f"{live_server.url}{reverse('account_login')}")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)

    page.goto(f"{live_server.url}{reverse('dashboard:overview', args=[project.pk])}")
    page.get_by_role("heading", name="Trends", exact=True).wait_for()
    page.get_by_text("Showing last 24 hours in").wait_for()
    charts = page.get_by_role("img")
    assert charts.count() == 5
    volume = page.locator("figure.chart", has_text="Trace volume").get_by_role("img")
    assert "Trace volume, 24 points" in volume.get_attribute("aria-label")
    assert page.locator("#cost-projected").inner_text().startswith("$")
    shot(page, tmp_path, "24h")

    windows = page.get_by_role("navigation", name="Chart window")
    windows.get_by_role("link", name="Last 7 days").click()
    page.wait_for_url("**window=7d**")
    page.get_by_text("Showing last 7 days in").wait_for()
    assert windows.get_by_role("link", name="Last 7 days").get_attribute("aria-current") == "page"
    assert "Trace volume, 7 points" in volume.get_attribute("aria-label")
    assert "Spans: total 60" in volume.get_attribute("aria-label")
    shot(page, tmp_path, "7d")

    windows.get_by_role("link", name="Last 30 days").focus()  # keyboard: the switch is plain links
    page.keyboard.press("Enter")
    page.wait_for_url("**window=30d**")
    page.get_by_text("Showing last 30 days in").wait_for()
    shot(page, tmp_path, "30d")
