from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import ROLE_CAN_MANAGE_MEMBERS, ROLE_CAN_WRITE, Organization
from apps.accounts.selectors import membership_get, project_get_for_user, projects_for_user
from apps.accounts.services import InvitationError, invitation_create, project_create
from apps.audit.services import actor_from_request
from apps.dashboard.context import TABS
from apps.dashboard.forms import InviteForm, KeyCreateForm, ProjectCreateForm
from apps.keys.models import ApiKey
from apps.keys.services import KeyParamError, key_create, key_revoke


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "dashboard/landing.html")
    project = projects_for_user(user=request.user).first()
    if project is None:
        return render(request, "dashboard/no_project.html")
    return redirect("dashboard:overview", project_id=project.pk)


def _keys_context(project, membership, **extra) -> dict:
    return {
        "project": project,
        "membership": membership,
        "can_write": membership.role in ROLE_CAN_WRITE,
        "keys": ApiKey.objects.for_project(project.pk).order_by("-created_at"),
        "projects": projects_for_user(user=membership.user),
        "tabs": TABS,
        "tab": "setup",
        **extra,
    }


@login_required
def project_detail(request: HttpRequest, project_id: str) -> HttpResponse:
    project, membership = project_get_for_user(user=request.user, project_id=project_id)
    context = _keys_context(project, membership, form=KeyCreateForm())
    return render(request, "dashboard/project.html", context)


@login_required
@require_POST
def key_create_view(request: HttpRequest, project_id: str) -> HttpResponse:
    project, membership = project_get_for_user(user=request.user, project_id=project_id)
    if membership.role not in ROLE_CAN_WRITE:
        raise PermissionDenied
    form = KeyCreateForm(request.POST)
    issued = None
    if form.is_valid():
        try:
            issued = key_create(
                project=project,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.cleaned_data["expires_at"],
                allowed_cidrs=form.cleaned_data["allowed_cidrs"],
                created_by=request.user,
            )
            form = KeyCreateForm()
        except KeyParamError as exc:
            form.add_error(exc.field.split("[")[0], exc.message)
    context = _keys_context(project, membership, form=form, issued=issued)
    template = "dashboard/_keys.html" if request.htmx else "dashboard/project.html"
    return render(request, template, context)


@login_required
@require_POST
def key_revoke_view(request: HttpRequest, project_id: str, key_id: str) -> HttpResponse:
    project, membership = project_get_for_user(user=request.user, project_id=project_id)
    if membership.role not in ROLE_CAN_WRITE:
        raise PermissionDenied
    key = get_object_or_404(ApiKey.objects.for_project(project.pk), pk=key_id)
    key_revoke(key=key, actor=actor_from_request(request))
    if request.htmx:
        context = _keys_context(project, membership, form=KeyCreateForm())
        return render(request, "dashboard/_keys.html", context)
    return redirect("dashboard:project", project_id=project.pk)


@login_required
def organization_members(request: HttpRequest, organization_id: str) -> HttpResponse:
    organization = get_object_or_404(Organization, pk=organization_id)
    membership = membership_get(user=request.user, organization=organization)
    if membership is None:
        raise PermissionDenied
    form = InviteForm()
    if request.method == "POST":
        if membership.role not in ROLE_CAN_MANAGE_MEMBERS:
            raise PermissionDenied
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                invitation_create(
                    organization=organization,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    invited_by=request.user,
                )
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("dashboard:members", organization_id=organization.pk)
            except InvitationError as exc:
                form.add_error("role", str(exc))
    context = {
        "organization": organization,
        "membership": membership,
        "can_manage": membership.role in ROLE_CAN_MANAGE_MEMBERS,
        "members": organization.memberships.select_related("user").order_by("created_at"),
        "invitations": organization.invitations.filter(accepted_at__isnull=True).order_by("-created_at"),
        "form": form,
        "projects": projects_for_user(user=request.user),
    }
    return render(request, "dashboard/members.html", context)


@login_required
def project_new(request: HttpRequest, organization_id: str) -> HttpResponse:
    organization = get_object_or_404(Organization, pk=organization_id)
    membership = membership_get(user=request.user, organization=organization)
    if membership is None or membership.role not in ROLE_CAN_MANAGE_MEMBERS:
        raise PermissionDenied
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = project_create(organization=organization, name=form.cleaned_data["name"])
        return redirect("dashboard:project", project_id=project.pk)
    return render(
        request,
        "dashboard/project_new.html",
        {"organization": organization, "form": form, "projects": projects_for_user(user=request.user)},
    )
