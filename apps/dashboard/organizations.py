"""Organization pages: their shared access check, the organization switcher of the top bar, and
creating a further organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from apps.accounts.models import ROLE_CAN_MANAGE_MEMBERS, Membership, Organization, Project
from apps.accounts.selectors import membership_get, memberships_with_projects
from apps.accounts.services import organization_start
from apps.audit.services import actor_from_request


@dataclass(frozen=True)
class OrganizationPage:
    organization: Organization
    membership: Membership

    @property
    def can_manage(self) -> bool:
        return self.membership.role in ROLE_CAN_MANAGE_MEMBERS


def organization_page(request: HttpRequest, organization_id, *, manage: bool = False) -> OrganizationPage:
    """The organization if the signed-in user belongs to it (404 otherwise, as for another
    organization's project); with `manage`, a member or viewer gets 403."""
    organization = Organization.objects.filter(pk=organization_id).first()
    membership = organization and membership_get(user=request.user, organization=organization)
    if organization is None or membership is None:
        raise Http404("No such organization.")
    page = OrganizationPage(organization, membership)
    if manage and not page.can_manage:
        raise PermissionDenied
    return page


def render_organization(
    request: HttpRequest, template: str, page: OrganizationPage, status: int = 200, **context
) -> HttpResponse:
    return render(
        request,
        template,
        {
            "organization": page.organization,
            "membership": page.membership,
            "can_manage": page.can_manage,
            **context,
        },
        status=status,
    )


# --- the switcher in the top bar ---------------------------------------------------------------


@dataclass(frozen=True)
class SwitcherEntry:
    organization: Organization
    role: str
    projects: list[Project]
    current: bool

    @property
    def can_manage(self) -> bool:
        return self.role in ROLE_CAN_MANAGE_MEMBERS


@dataclass(frozen=True)
class Switcher:
    entries: list[SwitcherEntry] = field(default_factory=list)
    current_organization: Organization | None = None
    current_project: Project | None = None


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def switcher_for(request: HttpRequest) -> Switcher:
    """The signed-in user's organizations and their projects, with the one the page is about
    (from the URL's organization or project id) marked current."""
    match = getattr(request, "resolver_match", None)
    kwargs = match.kwargs if match else {}
    project_id = _uuid(kwargs["project_id"]) if "project_id" in kwargs else None
    organization_id = _uuid(kwargs["organization_id"]) if "organization_id" in kwargs else None
    entries: list[SwitcherEntry] = []
    current_organization = current_project = None
    for membership in memberships_with_projects(user=request.user):
        organization = membership.organization
        projects = list(organization.projects.all())
        project = next((p for p in projects if p.pk == project_id), None)
        current = organization.pk == organization_id or project is not None
        if current:
            current_organization, current_project = organization, project
        entries.append(SwitcherEntry(organization, membership.role, projects, current))
    if current_organization is None and len(entries) == 1:
        current_organization = entries[0].organization
    return Switcher(entries, current_organization, current_project)


# --- a new organization ---------------------------------------------------------------------------


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        label="Organization name",
        help_text="Your company or team; you can invite others to it once it exists.",
        error_messages={"required": "An organization needs a name."},
    )
    project = forms.CharField(
        max_length=200,
        initial="Default",
        label="First project",
        help_text="Projects keep their own keys, destinations and rules.",
        error_messages={"required": "Name the first project."},
    )


@login_required
def organization_new(request: HttpRequest) -> HttpResponse:
    form = OrganizationCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                project = organization_start(
                    name=form.cleaned_data["name"],
                    project_name=form.cleaned_data["project"],
                    owner=request.user,
                    actor=actor_from_request(request),
                )
            except ValueError as exc:
                form.add_error("name", str(exc))
            else:
                messages.success(
                    request, f"“{project.organization.name}” created, with the project “{project.name}”."
                )
                return redirect("dashboard:overview", project_id=project.pk)
        status = 400
    return render(request, "dashboard/organization_new.html", {"form": form}, status=status)


urlpatterns = [
    path("orgs/new", organization_new, name="organization-new"),
]
