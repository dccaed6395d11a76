"""An organization's billing page: plan, limits, this month's usage, subscription, and the Stripe
Checkout and Customer Portal buttons (the services behind POST /v1/billing/checkout and /portal)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from apps.billing.plans import STANDARD_PLANS
from apps.billing.selectors import billing_contact_email, billing_overview
from apps.billing.stripe_billing import CHECKOUT_PLANS, checkout_create, portal_create
from apps.core.errors import ApiError
from apps.dashboard.organizations import OrganizationPage, organization_page, render_organization

# What Stripe's return (?billing=...) means, as told on the page.
RETURNS = {
    "success": (
        "success",
        "Thank you: your subscription is being set up. The new plan shows here once Stripe confirms it.",
    ),
    "canceled": ("info", "Checkout was canceled; nothing changed."),
    "portal": ("info", "Back from the Stripe Customer Portal. Changes show here once Stripe confirms them."),
}
_PLAN_NAMES = {code: values[0] for code, values in STANDARD_PLANS.items()}


def _billing_path(page: OrganizationPage) -> str:
    return reverse("dashboard:billing", kwargs={"organization_id": page.organization.pk})


def _render(
    request: HttpRequest, page: OrganizationPage, *, status: int = 200, error: str = ""
) -> HttpResponse:
    overview = billing_overview(page.organization.pk)
    returned = RETURNS.get(request.GET.get("billing", "")) if not error else None
    return render_organization(
        request,
        "dashboard/billing.html",
        page,
        status=status,
        billing=overview,
        usage=overview.usage,
        error=error,
        returned=returned,
    )


@login_required
def billing_view(request: HttpRequest, organization_id) -> HttpResponse:
    return _render(request, organization_page(request, organization_id, manage=True))


@login_required
@require_POST
def checkout_view(request: HttpRequest, organization_id) -> HttpResponse:
    """Start Stripe Checkout for a paid plan: a redirect to the session's URL."""
    page = organization_page(request, organization_id, manage=True)
    plan = request.POST.get("plan", "")
    if plan not in CHECKOUT_PLANS:
        names = " or ".join(_PLAN_NAMES[str(p)] for p in CHECKOUT_PLANS)
        return _render(request, page, status=400, error=f"Choose the {names} plan to upgrade to.")
    try:
        session = checkout_create(
            organization_id=page.organization.pk,
            plan=plan,
            email=billing_contact_email(page.organization.pk),
            return_path=_billing_path(page),
        )
    except ApiError as exc:
        return _render(request, page, status=exc.status_code, error=exc.message)
    return redirect(session["url"])


@login_required
@require_POST
def portal_view(request: HttpRequest, organization_id) -> HttpResponse:
    """Open the Stripe Customer Portal (payment methods, invoices, plan changes, cancelation)."""
    page = organization_page(request, organization_id, manage=True)
    try:
        session = portal_create(organization_id=page.organization.pk, return_path=_billing_path(page))
    except ApiError as exc:
        return _render(request, page, status=exc.status_code, error=exc.message)
    return redirect(session["url"])


urlpatterns = [
    path("orgs/<uuid:organization_id>/billing", billing_view, name="billing"),
    path("orgs/<uuid:organization_id>/billing/checkout", checkout_view, name="billing-checkout"),
    path("orgs/<uuid:organization_id>/billing/portal", portal_view, name="billing-portal"),
]
