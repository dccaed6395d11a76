"""The project overview: onboarding checklist, traffic, delivery health."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone

from apps.dashboard.context import project_page, render_project
from apps.delivery.models import Delivery, DeliveryStatus
from apps.delivery.selectors import destination_health
from apps.destinations.models import Destination
from apps.keys.models import ApiKey
from apps.traces.models import Span
from apps.traces.selectors import SpanFilters, spans_aggregate


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
    template = "dashboard/overview_live.html" if request.htmx else "dashboard/overview.html"
    return render_project(
        request,
        template,
        page,
        "overview",
        checklist=_checklist(page.project),
        totals=totals,
        by_model=by_model,
        destinations=destinations,
    )


urlpatterns = [
    path("projects/<uuid:project_id>/overview", overview, name="overview"),
]
