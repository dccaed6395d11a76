"""Destinations: forms generated from each connector's settings, test
connection, health, enable/disable, and a test trace for onboarding."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.core.errors import ApiError
from apps.dashboard.context import ProjectPage, project_page, render_project
from apps.dashboard.destination_forms import DestinationForm, type_choices
from apps.delivery.selectors import destination_health
from apps.delivery.services import destination_test
from apps.destinations.models import Destination
from apps.destinations.services import destination_create, destination_delete, destination_update
from apps.destinations.types import destination_types
from apps.ingest.limits import span_limits
from apps.routing.errors import ConfigError
from apps.routing.services import default_destination_if_unrouted
from apps.traces.pricing_overrides import price_overrides_for
from apps.traces.schema import decode_span
from apps.traces.store import spans_store


def _destination(page: ProjectPage, destination_id) -> Destination:
    return get_object_or_404(Destination.objects.for_project(page.project.pk), pk=destination_id)


def _apply_error(form: DestinationForm, exc: ConfigError | ApiError) -> None:
    if isinstance(exc, ConfigError):
        field = exc.field.removeprefix("config.").split(".")[0]
        target = f"config_{field}" if f"config_{field}" in form.fields else None
        form.add_error(target, exc.message)
    else:
        form.add_error("name", exc.message)


@login_required
def destination_list(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    choices = type_choices()
    chosen = request.GET.get("type") if request.GET.get("type") in destination_types() else choices[0][0]
    form = DestinationForm(dtype=destination_types()[chosen], initial={"enabled": True})
    if request.method == "POST":
        page = project_page(request, project_id, write=True)
        chosen = request.POST.get("type", "")
        if chosen not in destination_types():
            return redirect("dashboard:destinations", project_id=page.project.pk)
        form = DestinationForm(request.POST, dtype=destination_types()[chosen])
        if form.is_valid():
            config = form.config(editing=False)
            if form.is_valid():
                try:
                    destination = destination_create(
                        project_id=page.project.pk,
                        name=form.cleaned_data["name"],
                        type=chosen,
                        config=config,
                        enabled=form.cleaned_data["enabled"],
                        actor=page.actor,
                    )
                    messages.success(request, f"Destination “{destination.name}” added.")
                    if default_destination_if_unrouted(
                        project_id=page.project.pk, destination_id=destination.pk, actor=page.actor
                    ):
                        messages.info(request, "Traces that match no routing rule now go to it.")
                    return redirect(
                        "dashboard:destination", project_id=page.project.pk, destination_id=destination.pk
                    )
                except (ConfigError, ApiError) as exc:
                    _apply_error(form, exc)
    if request.htmx and request.method == "GET" and request.GET.get("type"):
        return render_project(request, "dashboard/destinations/_fields.html", page, "destinations", form=form)
    destinations = [
        (d, destination_health(d)) for d in Destination.objects.for_project(page.project.pk).order_by("name")
    ]
    return render_project(
        request,
        "dashboard/destinations/list.html",
        page,
        "destinations",
        destinations=destinations,
        form=form,
        type_choices=choices,
        chosen=chosen,
        status=400 if form.errors else 200,
    )


@login_required
def destination_detail(request: HttpRequest, project_id: str, destination_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    destination = _destination(page, destination_id)
    dtype = destination_types()[destination.type]
    stored = {"config": destination.config, "secrets_set": set(destination.secrets)}
    form = DestinationForm(
        dtype=dtype, stored=stored, initial={"name": destination.name, "enabled": destination.enabled}
    )
    if request.method == "POST":
        page = project_page(request, project_id, write=True)
        form = DestinationForm(request.POST, dtype=dtype, stored=stored)
        if form.is_valid():
            config = form.config(editing=True)
            if form.is_valid():
                try:
                    destination_update(
                        destination,
                        name=form.cleaned_data["name"],
                        enabled=form.cleaned_data["enabled"],
                        config=config,
                        actor=page.actor,
                    )
                    messages.success(request, "Saved.")
                    return redirect(
                        "dashboard:destination", project_id=page.project.pk, destination_id=destination.pk
                    )
                except (ConfigError, ApiError) as exc:
                    _apply_error(form, exc)
    return render_project(
        request,
        "dashboard/destinations/detail.html",
        page,
        "destinations",
        destination=destination,
        dtype=dtype,
        health=destination_health(destination),
        form=form,
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def destination_test_view(request: HttpRequest, project_id: str, destination_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    result = destination_test(_destination(page, destination_id))
    return render_project(
        request, "dashboard/destinations/_test_result.html", page, "destinations", result=result
    )


@login_required
@require_POST
def destination_delete_view(request: HttpRequest, project_id: str, destination_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    destination = _destination(page, destination_id)
    try:
        destination_delete(destination, actor=page.actor)
    except ApiError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:destination", project_id=page.project.pk, destination_id=destination.pk)
    messages.success(request, f"Destination “{destination.name}” deleted.")
    return redirect("dashboard:destinations", project_id=page.project.pk)


def sample_span() -> dict:
    now = timezone.now()
    span_id = f"test-{uuid.uuid4().hex[:12]}"
    return {
        "id": span_id,
        "name": "Test trace from the dashboard",
        "kind": "llm",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "start_time": (now - timezone.timedelta(milliseconds=640)).isoformat(),
        "end_time": now.isoformat(),
        "request": {"messages": [{"role": "user", "content": "Is Untrace delivering my traces?"}]},
        "response": {"content": "Yes: this trace went through your routing rules to your destinations."},
        "metadata": {"environment": "test", "tags": {"source": "dashboard"}},
    }


@login_required
@require_POST
def send_test_trace(request: HttpRequest, project_id: str) -> HttpResponse:
    """Store a sample trace as if an application had sent it; routing and delivery follow."""
    page = project_page(request, project_id, write=True)
    span = decode_span(sample_span(), limits=span_limits())
    spans_store(
        project_id=page.project.pk,
        spans=[span],
        source="dashboard",
        price_overrides=price_overrides_for(page.project.organization_id),
    )
    messages.success(request, f"Test trace {span.id} sent: it will show under Traces and Deliveries.")
    return redirect(request.POST.get("next") or "dashboard:overview", project_id=page.project.pk)


urlpatterns = [
    path("projects/<uuid:project_id>/destinations", destination_list, name="destinations"),
    path(
        "projects/<uuid:project_id>/destinations/<uuid:destination_id>",
        destination_detail,
        name="destination",
    ),
    path(
        "projects/<uuid:project_id>/destinations/<uuid:destination_id>/test",
        destination_test_view,
        name="destination-test",
    ),
    path(
        "projects/<uuid:project_id>/destinations/<uuid:destination_id>/delete",
        destination_delete_view,
        name="destination-delete",
    ),
    path("projects/<uuid:project_id>/test-trace", send_test_trace, name="test-trace"),
]
