"""Deleting an organization for good: owners only, confirmed by typing its name."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from apps.accounts.models import Organization, Role
from apps.accounts.selectors import membership_get
from apps.core.errors import ApiError
from apps.privacy.services import organization_delete


class OrganizationDeleteForm(forms.Form):
    confirm_name = forms.CharField(
        max_length=200,
        label="Type the organization's name to confirm",
        error_messages={"required": "Type the organization's name to confirm."},
    )

    def __init__(self, *args, organization: Organization, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_confirm_name(self) -> str:
        name = self.cleaned_data["confirm_name"]
        if name != self.organization.name:
            raise forms.ValidationError("That is not the organization's name; nothing was deleted.")
        return name


def _owned(request: HttpRequest, organization_id) -> Organization:
    """The organization if the signed-in user owns it: 404 for a stranger, 403 for other roles."""
    organization = Organization.objects.filter(pk=organization_id).first()
    membership = organization and membership_get(user=request.user, organization=organization)
    if organization is None or membership is None:
        raise Http404("No such organization.")
    if membership.role != Role.OWNER:
        raise PermissionDenied
    return organization


def _page(request: HttpRequest, organization: Organization, form: OrganizationDeleteForm, status: int = 200):
    return render(
        request,
        "dashboard/organization_delete.html",
        {"organization": organization, "delete_form": form},
        status=status,
    )


@login_required
def organization_delete_view(request: HttpRequest, organization_id) -> HttpResponse:
    organization = _owned(request, organization_id)
    if request.method != "POST":
        return _page(request, organization, OrganizationDeleteForm(organization=organization))
    form = OrganizationDeleteForm(request.POST, organization=organization)
    if not form.is_valid():
        return _page(request, organization, form, status=400)
    try:
        result = organization_delete(organization=organization, by_user=request.user)
    except ApiError as exc:  # Stripe refused the cancellation: nothing was deleted
        form.add_error(None, exc.message)
        return _page(request, organization, form, status=exc.status_code)
    note = "" if result.done else " The last of its stored data is being deleted in the background."
    messages.success(request, f"Organization “{organization.name}” and all of its data were deleted.{note}")
    return redirect("dashboard:home")


urlpatterns = [
    path("orgs/<uuid:organization_id>/delete", organization_delete_view, name="organization-delete"),
]
