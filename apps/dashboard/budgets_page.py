"""The Budgets section of the project settings: create, change and delete a budget through the
same services as `/v1/budgets`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.views.decorators.http import require_POST

from apps.budgets.models import Budget
from apps.budgets.services import BudgetError, budget_create, budget_delete, budget_update
from apps.dashboard.budget_forms import BudgetForm, budgets_context
from apps.dashboard.context import ProjectPage, project_page
from apps.dashboard.settings_page import _back, _render


def _budget(page: ProjectPage, budget_id) -> Budget:
    return get_object_or_404(Budget.objects.for_project(page.project.pk), pk=budget_id)


def _invalid(
    request: HttpRequest, page: ProjectPage, form: BudgetForm, editing: Budget | None
) -> HttpResponse:
    budgets = budgets_context(request, page, form=form, editing=editing)
    return _render(request, page, budgets=budgets, status=400)


@login_required
@require_POST
def budget_create_view(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    form = BudgetForm(request.POST, project_id=page.project.pk)
    if not form.is_valid():
        return _invalid(request, page, form, None)
    try:
        budget, secret = budget_create(project_id=page.project.pk, actor=page.actor, **form.values())
    except BudgetError as exc:
        form.add_service_error(exc)
        return _invalid(request, page, form, None)
    messages.success(request, f"Budget “{budget.name}” created.")
    response = _render(request, page, budgets=budgets_context(request, page, revealed=(budget, secret)))
    response["Cache-Control"] = "no-store"  # the webhook secret is shown once, and never from a cache
    return response


@login_required
@require_POST
def budget_update_view(request: HttpRequest, project_id: str, budget_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    budget = _budget(page, budget_id)
    form = BudgetForm(request.POST, project_id=page.project.pk)
    if not form.is_valid():
        return _invalid(request, page, form, budget)
    try:
        budget_update(budget, actor=page.actor, **form.values())
    except BudgetError as exc:
        budget.refresh_from_db()
        form.add_service_error(exc)
        return _invalid(request, page, form, budget)
    messages.success(request, f"Budget “{budget.name}” saved.")
    return _back(page, "budgets")


@login_required
@require_POST
def budget_delete_view(request: HttpRequest, project_id: str, budget_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    budget = _budget(page, budget_id)
    budget_delete(budget, actor=page.actor)
    messages.success(request, f"Budget “{budget.name}” deleted.")
    return _back(page, "budgets")


urlpatterns = [
    path("projects/<uuid:project_id>/settings/budgets", budget_create_view, name="settings-budget-create"),
    path(
        "projects/<uuid:project_id>/settings/budgets/<uuid:budget_id>",
        budget_update_view,
        name="settings-budget-update",
    ),
    path(
        "projects/<uuid:project_id>/settings/budgets/<uuid:budget_id>/delete",
        budget_delete_view,
        name="settings-budget-delete",
    ),
]
