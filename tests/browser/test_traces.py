"""A team member signs in, narrows the trace explorer to one model, opens a trace,
reads an LLM call as a chat and replays its dead-lettered delivery."""

from datetime import timedelta
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from apps.delivery.models import Delivery
from apps.ingest.limits import span_limits
from apps.traces.models import Span
from apps.traces.schema import decode_span
from apps.traces.store import spans_store
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def shot(page, tmp_path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        page.screenshot(path=str(folder / f"traces-{name}.png"), full_page=True)


def stored_traces(project) -> None:
    t0 = timezone.now() - timedelta(minutes=5)

    def at(seconds: float) -> str:
        return (t0 + timedelta(seconds=seconds)).isoformat()

    spans = [
        {
            "id": "root",
            "trace_id": "checkout-1",
            "name": "support-agent",
            "kind": "agent",
            "start_time": at(0),
            "end_time": at(4.2),
            "user_id": "user-7",
        },
        {
            "id": "plan",
            "trace_id": "checkout-1",
            "parent_id": "root",
            "name": "plan",
            "kind": "chain",
            "start_time": at(0.1),
            "end_time": at(0.9),
        },
        {
            "id": "llm",
            "trace_id": "checkout-1",
            "parent_id": "plan",
            "name": "answer",
            "provider": "openai",
            "model": "gpt-4o",
            "start_time": at(1),
            "end_time": at(3),
            "request": {
                "messages": [
                    {"role": "system", "content": "You are a helpful support agent."},
                    {"role": "user", "content": [{"type": "text", "text": "What is the refund policy?"}]},
                ]
            },
            "response": {
                "content": "Refunds are accepted within 30 days.",
                "finish_reason": "stop",
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            },
            "metrics": {"time_to_first_token_ms": 240},
            "metadata": {"environment": "prod", "tags": {"team": "support"}},
        },
        {
            "id": "tool",
            "trace_id": "checkout-1",
            "parent_id": "root",
            "name": "lookup-order",
            "kind": "tool",
            "start_time": at(3.1),
            "end_time": at(4),
            "error": {"type": "Timeout", "message": "order API timed out"},
        },
        {
            "id": "solo",
            "trace_id": "notes-9",
            "name": "summarise",
            "provider": "anthropic",
            "model": "claude-3-5-sonnet",
            "start_time": at(30),
            "end_time": at(31),
            "request": {"messages": [{"role": "user", "content": "Summarise the meeting"}]},
            "response": {"content": "A short summary."},
        },
    ]
    spans_store(
        project_id=project.pk, spans=[decode_span(s, limits=span_limits()) for s in spans], source="http"
    )
    span = Span.objects.get(project=project, span_id="llm")
    Delivery.objects.create(
        project=project,
        destination=DestinationFactory(project=project, name="Langfuse prod"),
        batch_id=span.batch_id,
        role="primary",
        items=[[span.pk, None, "primary", 1.0, None]],
        span_count=1,
        status="dead",
        attempts=3,
        last_status=422,
        last_error="platform refused the span",
        next_attempt_at=timezone.now(),
        expires_at=timezone.now(),
    )


def test_filter_open_a_trace_and_read_the_chat(page, live_server, tmp_path):
    project = ProjectFactory(name="Support bot")
    owner = MembershipFactory(organization=project.organization, role="owner").user
    EmailAddress.objects.create(user=owner, email=owner.email, verified=True, primary=True)
    stored_traces(project)

    page.goto(f"{live_server.url}{reverse('account_login')}")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)

    page.goto(f"{live_server.url}{reverse('dashboard:traces', args=[project.pk])}")
    rows = page.locator("table.trace-table tbody tr")
    assert rows.count() == 2
    shot(page, tmp_path, "list")

    page.get_by_label("Model").fill("gpt-4o")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**model=gpt-4o**")
    assert rows.count() == 1
    assert "support-agent" in rows.first.inner_text() and "summarise" not in page.content()
    shot(page, tmp_path, "filtered")

    page.get_by_label("Min latency (ms)").fill("-1")
    page.get_by_role("button", name="Filter").click()
    page.locator("#f-min_latency_ms-error").wait_for()
    assert "greater than or equal to 0" in page.locator("#f-min_latency_ms-error").inner_text()
    page.get_by_label("Min latency (ms)").fill("")
    page.get_by_role("button", name="Filter").click()

    page.get_by_role("link", name="support-agent").click()
    page.get_by_role("heading", name="Spans").wait_for()
    assert "order API timed out" in page.content()
    answer = page.locator("details.wf-span", has=page.locator("strong", has_text="answer"))
    assert not answer.locator(".chat").first.is_visible()
    answer.locator("summary").first.focus()
    page.keyboard.press("Enter")  # keyboard opens a span like a click does
    chat = answer.locator(".chat").first
    chat.wait_for()
    assert "What is the refund policy?" in chat.inner_text()
    assert "Refunds are accepted within 30 days." in answer.inner_text()
    assert "TTFT 240 ms" in answer.inner_text()
    shot(page, tmp_path, "trace")

    page.get_by_role("button", name="Replay").click()
    page.get_by_text("Sent again.").wait_for()
    assert "/traces/checkout-1" in page.url
    assert page.locator(".badge.pending").count() == 1
    shot(page, tmp_path, "replayed")
