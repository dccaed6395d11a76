"""The project overview: onboarding checklist, traffic, delivery health, and trends
(volume, deliveries, latency, usage by model) over a chosen window with this month's cost outlook."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone

from apps.billing.services import usage_summary
from apps.dashboard import charts
from apps.dashboard.charts import Series
from apps.dashboard.context import project_page, render_project
from apps.delivery.models import Delivery, DeliveryStatus
from apps.delivery.selectors import deliveries_over_time, destination_health
from apps.destinations.models import Destination
from apps.keys.models import ApiKey
from apps.traces.models import Span
from apps.traces.selectors import SpanFilters, spans_aggregate


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    bucket: str  # "hour" | "day"
    buckets: int


WINDOWS = (
    Window("24h", "Last 24 hours", "hour", 24),
    Window("7d", "Last 7 days", "day", 7),
    Window("30d", "Last 30 days", "day", 30),
)
DEFAULT_WINDOW = WINDOWS[0]


def window_of(key: str | None) -> Window:
    return next((w for w in WINDOWS if w.key == key), DEFAULT_WINDOW)


def bucket_starts(window: Window, now: datetime) -> list[datetime]:
    """The start of each bucket of the window, oldest first; the last one holds `now`."""
    if window.bucket == "hour":
        last, step = now.replace(minute=0, second=0, microsecond=0), timedelta(hours=1)
    else:
        last, step = now.replace(hour=0, minute=0, second=0, microsecond=0), timedelta(days=1)
    return [last - step * i for i in reversed(range(window.buckets))]


def month_cost_projection(cost_to_date: float, now: datetime) -> dict[str, Any]:
    """Month-to-date cost carried linearly to the month's end: the average cost per day so far
    (today counts as a whole day) times the days in the month."""
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    days_so_far = now.day
    per_day = cost_to_date / days_so_far
    return {
        "month": now.strftime("%B %Y"),
        "cost_to_date": cost_to_date,
        "days_so_far": days_so_far,
        "days_in_month": days_in_month,
        "per_day": per_day,
        "projected": per_day * days_in_month,
    }


def money(value: float) -> str:
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value else "$0"


def _trends(project_id, window: Window, now: datetime) -> dict[str, Any]:
    starts = bucket_starts(window, now)
    labels = [s.strftime("%H:%M" if window.bucket == "hour" else "%b %d") for s in starts]
    x_label = "Hour (UTC)" if window.bucket == "hour" else "Day (UTC)"
    filters = SpanFilters(start=starts[0])
    by_time = spans_aggregate(project_id=project_id, filters=filters, group_by=window.bucket)
    groups = {datetime.fromisoformat(g["key"]): g for g in by_time["groups"]}
    rows = [groups.get(start) for start in starts]
    spans = [g["count"] if g else 0 for g in rows]
    errors = [round(g["count"] * g["error_rate"]) if g else 0 for g in rows]
    p50 = [g["latency_ms"]["p50"] if g else None for g in rows]
    p95 = [g["latency_ms"]["p95"] if g else None for g in rows]
    finished = {
        row["bucket"]: row
        for row in deliveries_over_time(project_id=project_id, start=starts[0], bucket=window.bucket)
    }
    outcomes = [finished.get(start, {}) for start in starts]
    by_model = spans_aggregate(project_id=project_id, filters=filters, group_by="model")["groups"]
    models = [g for g in by_model if g["key"]]
    period = window.label.lower()
    return {
        "volume": charts.line_chart(
            title="Trace volume",
            labels=labels,
            series=[Series("Spans", spans, "primary"), Series("Errors", errors, "error")],
            x_label=x_label,
            y_label="Spans",
            empty=f"No spans in the {period}. Send traces with the snippet in Keys & setup.",
            totals=True,
        ),
        "deliveries": charts.stacked_column_chart(
            title="Deliveries by outcome",
            labels=labels,
            series=[
                Series("Delivered", [o.get("delivered", 0) for o in outcomes], "ok"),
                Series("Rerouted to fallback", [o.get("rerouted", 0) for o in outcomes], "warn"),
                Series("Dead-lettered", [o.get("dead", 0) for o in outcomes], "error"),
            ],
            x_label=x_label,
            y_label="Deliveries",
            empty=f"No deliveries finished in the {period}. Add a destination to start delivering.",
        ),
        "latency": charts.line_chart(
            title="Latency",
            labels=labels,
            series=[Series("p50", p50, "primary"), Series("p95", p95, "warn")],
            x_label=x_label,
            y_label="Latency (ms)",
            empty=f"No span durations in the {period}: spans need a start and an end time.",
        ),
        "cost_by_model": charts.bar_chart(
            title="Cost by model",
            rows=[(g["key"], g["cost"]) for g in models],
            x_label="Cost (USD)",
            y_label="Model",
            empty=f"No priced LLM calls in the {period}.",
            fmt=money,
            width=460,
        ),
        "tokens_by_model": charts.bar_chart(
            title="Tokens by model",
            rows=[(g["key"], g["total_tokens"]) for g in models],
            x_label="Tokens",
            y_label="Model",
            empty=f"No token usage in the {period}.",
            tone="muted",
            width=460,
        ),
    }


def _checklist(project) -> list[tuple[str, bool]]:
    return [
        ("Create an API key", ApiKey.objects.for_project(project.pk).exists()),
        ("Add a destination", Destination.objects.for_project(project.pk).exists()),
        ("Send a trace", Span.objects.for_project(project.pk).exists()),
        (
            "See it delivered",
            Delivery.objects.for_project(project.pk).filter(status=DeliveryStatus.DELIVERED).exists(),
        ),
    ]


@login_required
def overview(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    since = timezone.now() - timedelta(hours=24)
    totals = spans_aggregate(project_id=page.project.pk, filters=SpanFilters(start=since), group_by=None)
    by_model = spans_aggregate(project_id=page.project.pk, filters=SpanFilters(start=since), group_by="model")
    destinations = [
        (d, destination_health(d)) for d in Destination.objects.for_project(page.project.pk).order_by("name")
    ]
    context: dict[str, Any] = {}
    if request.htmx:  # the polled live part only; trends are drawn once per page load
        template = "dashboard/overview_live.html"
    else:
        template = "dashboard/overview.html"
        now = timezone.now()
        window = window_of(request.GET.get("window"))
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        month = spans_aggregate(
            project_id=page.project.pk, filters=SpanFilters(start=month_start), group_by=None
        )
        projection = month_cost_projection(month["totals"]["cost"], now)
        context = {
            "window": window,
            "windows": WINDOWS,
            "charts": _trends(page.project.pk, window, now),
            "projection": {
                **projection,
                **{f"{k}_text": money(projection[k]) for k in ("cost_to_date", "per_day", "projected")},
            },
        }
    return render_project(
        request,
        template,
        page,
        "overview",
        checklist=_checklist(page.project),
        usage=usage_summary(page.project.organization_id),
        totals=totals,
        by_model=by_model,
        destinations=destinations,
        **context,
    )


urlpatterns = [
    path("projects/<uuid:project_id>/overview", overview, name="overview"),
]
