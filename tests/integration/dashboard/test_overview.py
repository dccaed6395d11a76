"""The overview page: trend charts over a chosen window, this month's cost outlook, access."""

from __future__ import annotations

import calendar
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.dashboard.overview import money
from apps.delivery.models import Delivery
from apps.delivery.selectors import deliveries_over_time
from apps.ingest.limits import span_limits
from apps.traces.schema import decode_span
from apps.traces.store import spans_store
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def url(project, window: str | None = None) -> str:
    base = reverse("dashboard:overview", args=[project.pk])
    return f"{base}?window={window}" if window else base


def llm_span(span_id: str, start, *, model: str, cost: float, tokens: int, error: bool = False) -> dict:
    span = {
        "id": span_id,
        "trace_id": f"trace-{span_id}",
        "name": "answer",
        "provider": "openai",
        "model": model,
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(milliseconds=400)).isoformat(),
        "response": {
            "content": "ok",
            "usage": {"prompt_tokens": tokens - 10, "completion_tokens": 10, "total_tokens": tokens},
        },
        "metrics": {"estimated_cost": cost},
    }
    if error:
        span["error"] = {"type": "Timeout", "message": "upstream timed out"}
    return span


def store(project, spans: list[dict]) -> None:
    spans_store(
        project_id=project.pk, spans=[decode_span(s, limits=span_limits()) for s in spans], source="http"
    )


def delivery(project, destination, status: str, finished_at) -> Delivery:
    return Delivery.objects.create(
        project=project,
        destination=destination,
        role="primary",
        items=[],
        span_count=1,
        status=status,
        next_attempt_at=finished_at,
        expires_at=finished_at,
        finished_at=finished_at,
    )


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def traffic(project, now):
    """Spans this hour and three days ago (outside 24 h, inside 7 d); deliveries finished recently."""
    recent = now - timedelta(minutes=1)
    store(
        project,
        [
            llm_span("a", recent, model="gpt-4o", cost=0.5, tokens=1000),
            llm_span("b", recent, model="gpt-4o", cost=0.25, tokens=500, error=True),
            llm_span("c", recent, model='claude-<sonnet>&"x"', cost=0.125, tokens=250),
        ],
    )
    store(project, [llm_span("old", now - timedelta(days=3), model="gpt-4o-mini", cost=1.0, tokens=4000)])
    destination = DestinationFactory(project=project, name="Langfuse")
    for status in ("delivered", "delivered", "dead", "rerouted"):
        delivery(project, destination, status, recent)
    pending = delivery(project, destination, "pending", recent)
    Delivery.objects.filter(pk=pending.pk).update(finished_at=None)
    return destination


def figures(body: str) -> dict[str, str]:
    """Each chart's markup by its title."""
    found = re.findall(
        r'<figure class="chart"><figcaption class="chart-title">(.*?)</figcaption>(.*?)</figure>', body
    )
    return dict(found)


def test_charts_render_the_last_24_hours(client, owner, project, traffic):
    client.force_login(owner)
    response = client.get(url(project))
    assert response.status_code == 200
    body = response.content.decode()
    charts = figures(body)
    assert set(charts) == {
        "Trace volume",
        "Deliveries by outcome",
        "Latency",
        "Cost by model",
        "Tokens by model",
    }
    for title in ("Trace volume", "Deliveries by outcome", "Latency", "Cost by model", "Tokens by model"):
        chart = charts[title]
        assert 'role="img"' in chart and "aria-label=" in chart and "<title>" in chart
        assert '<table class="chart-data">' in chart
    volume = charts["Trace volume"]
    assert "Spans: total 3, highest 3" in volume and "Errors: total 1, highest 1" in volume
    assert volume.count("<tr>") == 1 + 24  # header + one row per hour
    assert "Hour (UTC)" in volume
    outcomes = charts["Deliveries by outcome"]
    assert "Delivered: total 2" in outcomes and "Dead-lettered: total 1" in outcomes
    assert "Rerouted to fallback: total 1" in outcomes
    assert "p50: highest 400 at" in charts["Latency"]
    cost = charts["Cost by model"]
    assert "gpt-4o $0.7500" in cost and "gpt-4o-mini" not in cost  # three days ago: outside 24 h
    assert "claude-&lt;sonnet&gt;&amp;&quot;x&quot;" in cost and "<sonnet>" not in body
    assert "gpt-4o 1.5k" in charts["Tokens by model"]
    assert 'aria-current="page" class="current">Last 24 hours' in body
    # the live part and the per-destination health table stay
    assert 'hx-trigger="every 5s"' in body and "Langfuse" in body and "Success (24 h)" in body


def test_window_switch_to_days(client, owner, project, traffic):
    client.force_login(owner)
    body = client.get(url(project, "7d")).content.decode()
    charts = figures(body)
    volume = charts["Trace volume"]
    assert volume.count("<tr>") == 1 + 7 and "Day (UTC)" in volume
    assert "Spans: total 4" in volume
    assert "gpt-4o-mini $1.00" in charts["Cost by model"]
    assert 'aria-current="page" class="current">Last 7 days' in body and "Showing last 7 days in" in body

    month = figures(client.get(url(project, "30d")).content.decode())["Trace volume"]
    assert month.count("<tr>") == 1 + 30

    fallback = client.get(url(project, "forever"))  # an unknown window is the default one
    assert fallback.status_code == 200 and "Showing last 24 hours in" in fallback.content.decode()


def test_polling_renders_only_the_live_part(client, owner, project, traffic):
    client.force_login(owner)
    body = client.get(url(project), HTTP_HX_REQUEST="true").content.decode()
    assert "Langfuse" in body and 'id="stat-spans"' in body
    assert "Trace volume" not in body and "<html" not in body


def test_month_cost_projection(client, owner, project, now):
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    store(
        project,
        [
            llm_span("m1", month_start, model="gpt-4o", cost=1.5, tokens=100),
            llm_span(
                "m2", max(month_start, now - timedelta(minutes=1)), model="gpt-4o", cost=0.5, tokens=100
            ),
        ],
    )
    store(
        project,
        [llm_span("last-month", month_start - timedelta(hours=1), model="gpt-4o", cost=7, tokens=100)],
    )
    client.force_login(owner)
    body = client.get(url(project)).content.decode()
    days = calendar.monthrange(now.year, now.month)[1]
    per_day = 2.0 / now.day
    expected = per_day * days
    assert re.search(r'id="cost-to-date">\$2\.00<', body)
    assert f'id="cost-per-day">{money(per_day)}<' in body
    assert f'id="cost-projected">{money(expected)}<' in body
    assert f"{now.day} day" in body and f"{days} days of the month" in body
    assert now.strftime("%B %Y") in body


def test_empty_project_shows_what_to_do(client, owner, project):
    client.force_login(owner)
    body = client.get(url(project)).content.decode()
    assert 'role="img"' not in body
    assert "No spans in the last 24 hours" in body
    assert "No deliveries finished in the last 24 hours" in body
    assert "No priced LLM calls" in body and "No token usage" in body
    assert 'id="cost-to-date">$0<' in body and 'id="cost-projected">$0<' in body
    assert "Get your first trace delivered" in body  # the onboarding checklist is still there


def test_viewer_can_read(client, project, traffic):
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    client.force_login(viewer)
    response = client.get(url(project, "7d"))
    assert response.status_code == 200 and "Trace volume" in response.content.decode()


def test_other_organization_is_a_404(client, owner, traffic):
    other = ProjectFactory()
    client.force_login(owner)
    assert client.get(url(other)).status_code == 404
    assert client.get(url(other, "30d")).status_code == 404


def test_deliveries_over_time_groups_finished_rows_by_bucket_and_outcome(project, now):
    destination = DestinationFactory(project=project)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    for status, finished in [
        ("delivered", this_hour + timedelta(seconds=1)),
        ("delivered", this_hour + timedelta(seconds=2)),
        ("dead", this_hour - timedelta(minutes=30)),
        ("rerouted", this_hour - timedelta(minutes=30)),
        ("delivered", this_hour - timedelta(days=2)),  # before the start
    ]:
        delivery(project, destination, status, finished)
    pending = delivery(project, destination, "pending", this_hour)
    Delivery.objects.filter(pk=pending.pk).update(finished_at=None)
    elsewhere = DestinationFactory(project=ProjectFactory())
    delivery(elsewhere.project, elsewhere, "delivered", this_hour)

    rows = deliveries_over_time(project_id=project.pk, start=this_hour - timedelta(hours=1), bucket="hour")
    assert rows == [
        {"bucket": this_hour - timedelta(hours=1), "delivered": 0, "dead": 1, "rerouted": 1},
        {"bucket": this_hour, "delivered": 2, "dead": 0, "rerouted": 0},
    ]
    days = deliveries_over_time(project_id=project.pk, start=this_hour - timedelta(days=3), bucket="day")
    assert sum(r["delivered"] for r in days) == 3 and len(days) in (2, 3)


def test_the_overview_shows_the_plan_and_this_months_usage(client, owner, project):
    from apps.billing.models import Plan
    from tests.factories import SubscriptionFactory, UsageCounterFactory

    subscription = SubscriptionFactory(
        organization=project.organization, plan=Plan.objects.get(code="starter")
    )
    UsageCounterFactory(organization=subscription.organization, traces=85_000)
    client.force_login(owner)
    page = client.get(f"/projects/{project.pk}/overview").content.decode()
    assert "Starter plan" in page and "85,000 of 100,000 spans" in page and "(85.0 %)" in page
    assert "85 % of this month" in page and "kept 7 days" in page
