"""Deliveries: the ledger, dead letters with the platform's answer, replay."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.views.decorators.http import require_POST

from apps.dashboard.context import project_page, render_project
from apps.delivery.models import Delivery, DeliveryStatus
from apps.delivery.selectors import deliveries_filtered
from apps.delivery.services import deliveries_replay
from apps.destinations.models import Destination


def _filters(request: HttpRequest, project_id) -> dict:
    status = request.GET.get("status") or None
    destination = request.GET.get("destination") or None
    known = {str(pk) for pk in Destination.objects.for_project(project_id).values_list("pk", flat=True)}
    return {
        "status": status if status in DeliveryStatus.values else None,
        "destination_id": destination if destination in known else None,
    }


@login_required
def delivery_list(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    filters = _filters(request, page.project.pk)
    deliveries = (
        deliveries_filtered(project_id=page.project.pk, **filters)
        .select_related("destination")
        .order_by("-created_at")[:100]
    )
    return render_project(
        request,
        "dashboard/deliveries/list.html",
        page,
        "deliveries",
        deliveries=deliveries,
        filters=filters,
        statuses=DeliveryStatus.values,
        destinations=Destination.objects.for_project(page.project.pk).order_by("name"),
    )


@login_required
@require_POST
def delivery_replay(request: HttpRequest, project_id: str, delivery_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    delivery = get_object_or_404(Delivery.objects.for_project(page.project.pk), pk=delivery_id)
    deliveries_replay(Delivery.objects.filter(pk=delivery.pk))
    messages.success(request, "Sent again.")
    return redirect(request.POST.get("next") or "dashboard:deliveries", project_id=page.project.pk)


@login_required
@require_POST
def delivery_replay_matching(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    filters = _filters(request, page.project.pk) | {"status": DeliveryStatus.DEAD}
    filters["destination_id"] = request.POST.get("destination") or filters["destination_id"]
    queryset = deliveries_filtered(project_id=page.project.pk, **filters)
    count = deliveries_replay(queryset)
    messages.success(request, f"{count} dead-lettered deliveries sent again.")
    return redirect("dashboard:deliveries", project_id=page.project.pk)


urlpatterns = [
    path("projects/<uuid:project_id>/deliveries", delivery_list, name="deliveries"),
    path("projects/<uuid:project_id>/deliveries/replay", delivery_replay_matching, name="deliveries-replay"),
    path(
        "projects/<uuid:project_id>/deliveries/<uuid:delivery_id>/replay",
        delivery_replay,
        name="delivery-replay",
    ),
]
