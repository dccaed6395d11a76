"""The trace explorer: filtered trace list, one trace as a waterfall, its deliveries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.delivery.models import Delivery
from apps.ingest.limits import span_limits
from apps.traces.models import Span
from apps.traces.schema import decode_span
from apps.traces.store import spans_store
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def store(project, spans: list[dict]) -> None:
    spans_store(
        project_id=project.pk, spans=[decode_span(s, limits=span_limits()) for s in spans], source="http"
    )


def agent_trace(prefix: str = "") -> list[dict]:
    """An agent whose LLM call uses gpt-4o and whose tool call fails."""
    trace = f"{prefix}run/42"
    return [
        {
            "id": f"{prefix}root",
            "trace_id": trace,
            "name": "support-agent",
            "kind": "agent",
            "start_time": at(0),
            "end_time": at(4),
            "user_id": "user-7",
            "session_id": "sess-1",
        },
        {
            "id": f"{prefix}llm",
            "trace_id": trace,
            "parent_id": f"{prefix}root",
            "name": "answer",
            "provider": "openai",
            "model": "gpt-4o",
            "start_time": at(1),
            "end_time": at(3),
            "request": {
                "messages": [
                    {"role": "system", "content": "You are a helpful agent."},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is the refund policy?"},
                            {"type": "image_url", "image_url": {"url": "https://example.com/receipt.png"}},
                        ],
                    },
                ]
            },
            "response": {
                "content": "Refunds within 30 days.",
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
                "finish_reason": "stop",
            },
            "metrics": {"time_to_first_token_ms": 240, "estimated_cost": 0.0125},
            "metadata": {"environment": "prod", "tags": {"team": "support"}},
        },
        {
            "id": f"{prefix}tool",
            "trace_id": trace,
            "parent_id": f"{prefix}root",
            "name": "lookup-order",
            "kind": "tool",
            "start_time": at(3),
            "end_time": at(3.5),
            "error": {"type": "Timeout", "message": "order service timed out"},
        },
    ]


def chat_trace() -> list[dict]:
    return [
        {
            "id": "solo",
            "trace_id": "solo-trace",
            "name": "summarise",
            "provider": "anthropic",
            "model": "claude-3-5-sonnet",
            "start_time": at(60),
            "end_time": at(61),
            "request": {"messages": [{"role": "user", "content": "Summarise the meeting"}]},
            "response": {"content": "Short summary.", "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
            "metadata": {"tags": {"team": "sales"}},
        }
    ]


@pytest.fixture
def stored(project):
    store(project, agent_trace() + chat_trace())


def list_url(project) -> str:
    return reverse("dashboard:traces", args=[project.pk])


def trace_url(project, trace_id: str) -> str:
    return reverse("dashboard:trace", args=[project.pk, trace_id])


def names(response) -> list[str]:
    """The trace names of the list, in order."""
    return re.findall(r'<a href="/projects/[^"]+/traces/[^"]+">([^<]+)</a>', response.content.decode())


def field_error(response, field: str) -> str:
    match = re.search(rf'<span class="error" id="f-{field}-error">([^<]*)</span>', response.content.decode())
    assert match, f"no error next to {field}"
    return match.group(1)


def test_list_shows_traces_newest_first_with_totals(client, owner, project, stored):
    client.force_login(owner)
    response = client.get(list_url(project))
    assert response.status_code == 200
    assert names(response) == ["summarise", "support-agent"]
    body = response.content.decode()
    assert f'href="{trace_url(project, "run/42")}"' in body
    assert "gpt-4o" in body  # the agent's models come from its spans
    assert "3 spans" in body and '<span class="badge error">error</span>' in body
    assert "150" in body and "$0.012500" in body and "4000 ms" in body


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "gpt-4o"}, ["support-agent"]),
        ({"provider": "anthropic"}, ["summarise"]),
        ({"status": "error"}, ["support-agent"]),
        ({"kind": "tool"}, ["support-agent"]),
        ({"tag": "team:sales"}, ["summarise"]),
        ({"user_id": "user-7"}, ["support-agent"]),
        ({"session_id": "sess-1"}, ["support-agent"]),
        ({"q": "REFUND policy"}, ["support-agent"]),
        ({"min_cost": "0.01"}, ["support-agent"]),
        ({"max_cost": "0.001"}, ["summarise"]),  # priced from the bundled table
        ({"min_latency_ms": "1500"}, ["support-agent"]),
        ({"max_latency_ms": "1000"}, ["summarise", "support-agent"]),
        ({"start": "2026-03-02T09:00:30"}, ["summarise"]),
        ({"end": "2026-03-02T09:00:30"}, ["support-agent"]),
        ({"range": "1h", "end": ""}, []),
    ],
)
def test_filters(client, owner, project, stored, params, expected):
    client.force_login(owner)
    response = client.get(list_url(project), params)
    assert response.status_code == 200, response.content
    assert names(response) == expected
    for value in params.values():
        if value:
            assert f'value="{value}"' in response.content.decode()


def test_time_range_preset_counts_back_from_now(client, owner, project):
    store(project, [{"id": "recent", "name": "recent-call", "start_time": timezone.now().isoformat()}])
    store(project, [{"id": "old", "name": "old-call", "start_time": at(0)}])
    client.force_login(owner)
    assert names(client.get(list_url(project), {"range": "24h"})) == ["recent-call"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", "robot", "is not a valid choice"),
        ("status", "maybe", "is not a valid choice"),
        ("min_latency_ms", "-5", "greater than or equal to 0"),
        ("max_cost", "cheap", "A valid number is required"),
        ("start", "yesterday", "Datetime has wrong format"),
        ("tag", "no-colon", "does not match"),
        ("range", "forever", "Choose one of the listed ranges"),
    ],
)
def test_bad_filter_shows_error_next_to_it(client, owner, project, stored, field, value, message):
    client.force_login(owner)
    response = client.get(list_url(project), {field: value, "model": "gpt-4o"})
    assert response.status_code == 400
    assert message in field_error(response, field)
    assert 'aria-invalid="true"' in response.content.decode()
    assert "Fix the filters marked above" in response.content.decode()
    assert names(response) == []


def test_empty_states(client, owner, project):
    client.force_login(owner)
    empty = client.get(list_url(project)).content.decode()
    assert "No traces yet" in empty and reverse("dashboard:project", args=[project.pk]) in empty
    store(project, chat_trace())
    unmatched = client.get(list_url(project), {"model": "nothing-like-it"}).content.decode()
    assert "No trace matches these filters" in unmatched and "Clear filters" in unmatched


def test_pagination_by_start_time(client, owner, project):
    store(project, [{"id": f"s{i}", "name": f"call-{i}", "start_time": at(i)} for i in range(5)])
    client.force_login(owner)
    first = client.get(list_url(project), {"limit": "2", "model": ""})
    assert names(first) == ["call-4", "call-3"]
    older = (
        re.search(r'<a href="([^"]+)" rel="next">Older', first.content.decode())
        .group(1)
        .replace("&amp;", "&")
    )
    assert older.startswith(list_url(project) + "?")
    second = client.get(older)
    assert names(second) == ["call-2", "call-1"]
    assert 'rel="prev">← Newer' in second.content.decode()
    last = client.get(
        re.search(r'<a href="([^"]+)" rel="next">', second.content.decode()).group(1).replace("&amp;", "&")
    )
    assert names(last) == ["call-0"] and 'rel="next"' not in last.content.decode()

    broken = client.get(list_url(project), {"cursor": "not-a-cursor"})
    assert broken.status_code == 400
    assert "This page link is no longer valid" in broken.content.decode()
    too_many = client.get(list_url(project), {"limit": "5000"})
    assert too_many.status_code == 400
    assert "limit: must be an integer from 1 to 200" in too_many.content.decode()


def test_trace_page_shows_totals_waterfall_and_chat(client, owner, project, stored):
    client.force_login(owner)
    response = client.get(trace_url(project, "run/42"))
    assert response.status_code == 200
    body = response.content.decode()
    for text in ("Spans", ">3<", "Errors", ">1<", "150", "$0.012500", "4000 ms", "gpt-4o"):
        assert text in body
    # depth first: root, then its children by start time, indented
    assert [m for m in re.findall(r"<strong>([^<]+)</strong>", body) if m != "Timeout"] == [
        "support-agent",
        "answer",
        "lookup-order",
    ]
    assert 'style="padding-left: 0.0rem"' in body and 'style="padding-left: 1.1rem"' in body
    # the LLM call runs from 1 s to 3 s of a 4 s trace
    assert 'style="left: 25.000%; width: 50.000%"' in body
    assert "TTFT 240 ms" in body and "2000 ms" in body
    assert "You are a helpful agent." in body and "What is the refund policy?" in body
    assert "image_url" in body and "https://example.com/receipt.png" in body
    assert "Refunds within 30 days." in body and "(stop)" in body
    assert "team: support" in body
    assert "Timeout</strong>: order service timed out" in body
    assert "Raw JSON" in body and "&quot;parent_id&quot;: &quot;root&quot;" in body
    assert "No delivery for this trace yet" in body
    assert 'aria-current="page" class="current">Traces' in body


def test_unknown_trace_is_a_404_inside_the_frame(client, owner, project, stored):
    client.force_login(owner)
    response = client.get(trace_url(project, "no/such-trace"))
    assert response.status_code == 404
    body = response.content.decode()
    assert "Trace not found" in body and "no/such-trace" in body
    assert 'aria-current="page" class="current">Traces' in body


def dead_delivery(project, destination, span_id: str) -> Delivery:
    span = Span.objects.get(project=project, span_id=span_id)
    return Delivery.objects.create(
        project=project,
        destination=destination,
        batch_id=span.batch_id,
        role="primary",
        items=[[span.pk, None, "primary", 1.0, None]],
        span_count=1,
        status="dead",
        attempts=3,
        last_status=422,
        last_error="platform refused: bad model name",
        next_attempt_at=timezone.now(),
        expires_at=timezone.now(),
    )


def test_trace_deliveries_and_replay_back_to_the_trace(client, owner, project, stored):
    destination = DestinationFactory(project=project, name="Langfuse prod")
    delivery = dead_delivery(project, destination, "llm")
    client.force_login(owner)
    url = trace_url(project, "run/42")
    body = client.get(url).content.decode()
    assert "Langfuse prod" in body and '<span class="badge dead">dead</span>' in body
    assert "422" in body and "platform refused: bad model name" in body
    replay = reverse("dashboard:delivery-replay", args=[project.pk, delivery.pk])
    assert f'action="{replay}"' in body and f'name="next" value="{url}"' in body
    # the other trace has no delivery
    assert "No delivery for this trace yet" in client.get(trace_url(project, "solo-trace")).content.decode()

    response = client.post(replay, {"next": url})
    assert response.status_code == 302 and response["Location"] == url
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.replays == 1


def test_viewer_reads_but_cannot_replay(client, project, stored):
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    delivery = dead_delivery(project, DestinationFactory(project=project, name="Phoenix"), "root")
    client.force_login(viewer)
    assert client.get(list_url(project)).status_code == 200
    body = client.get(trace_url(project, "run/42")).content.decode()
    assert "Phoenix" in body and '<span class="badge dead">dead</span>' in body
    assert "Replay</button>" not in body
    replay = reverse("dashboard:delivery-replay", args=[project.pk, delivery.pk])
    assert client.post(replay, {"next": trace_url(project, "run/42")}).status_code == 403


def test_another_organizations_project_is_a_404(client, owner, project, stored):
    other = ProjectFactory()
    store(other, agent_trace(prefix="other-"))
    client.force_login(owner)
    assert client.get(list_url(other)).status_code == 404
    assert client.get(trace_url(other, "other-run/42")).status_code == 404
    # a trace id of another project is unknown here
    assert client.get(trace_url(project, "other-run/42")).status_code == 404


def test_signed_out_visitor_is_sent_to_sign_in(client, project, stored):
    response = client.get(trace_url(project, "run/42"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_trace_without_end_times_still_renders(client, owner, project):
    store(project, [{"id": "open", "trace_id": "open-trace", "name": "streaming", "start_time": at(0)}])
    client.force_login(owner)
    response = client.get(trace_url(project, "open-trace"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "streaming" in body and 'style="left: 0.000%; width: 0.400%"' in body
