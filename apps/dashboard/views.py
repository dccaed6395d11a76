from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import ROLE_CAN_MANAGE_KEYS, ROLE_CAN_MANAGE_MEMBERS, Invitation, Membership, Role
from apps.accounts.selectors import project_get_for_user, projects_for_user
from apps.accounts.services import (
    InvitationError,
    MembershipError,
    invitation_create,
    invitation_revoke,
    membership_change_role,
    membership_remove,
    project_create,
)
from apps.audit.services import actor_from_request
from apps.dashboard.context import TABS
from apps.dashboard.forms import InviteForm, KeyCreateForm, ProjectCreateForm
from apps.dashboard.organizations import organization_page
from apps.keys.models import ApiKey
from apps.keys.services import KeyParamError, key_create, key_revoke, key_rotate


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
        "can_manage_keys": membership.role in ROLE_CAN_MANAGE_KEYS,
        "keys": ApiKey.objects.for_project(project.pk)
        .annotate(successor_id=F("rotated_to__id"))
        .order_by("-created_at"),
        "grace_hours": int(settings.UNTRACE_KEY_ROTATION_GRACE.total_seconds() // 3600),
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
    if membership.role not in ROLE_CAN_MANAGE_KEYS:
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
                rate_limit_per_second=form.cleaned_data["rate_limit_per_second"],
                rate_limit_burst=form.cleaned_data["rate_limit_burst"],
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
    if membership.role not in ROLE_CAN_MANAGE_KEYS:
        raise PermissionDenied
    key = get_object_or_404(ApiKey.objects.for_project(project.pk), pk=key_id)
    key_revoke(key=key, actor=actor_from_request(request))
    if request.htmx:
        context = _keys_context(project, membership, form=KeyCreateForm())
        return render(request, "dashboard/_keys.html", context)
    return redirect("dashboard:project", project_id=project.pk)


@login_required
@require_POST
def key_rotate_view(request: HttpRequest, project_id: str, key_id: str) -> HttpResponse:
    """A new key with the same settings (shown once); the old one works for the default grace period."""
    project, membership = project_get_for_user(user=request.user, project_id=project_id)
    if membership.role not in ROLE_CAN_MANAGE_KEYS:
        raise PermissionDenied
    key = get_object_or_404(ApiKey.objects.for_project(project.pk), pk=key_id)
    issued, error = None, None
    try:
        with transaction.atomic():
            issued = key_rotate(key=key, created_by=request.user, actor=actor_from_request(request))
    except KeyParamError as exc:
        error = exc.message
    context = _keys_context(project, membership, form=KeyCreateForm(), issued=issued, rotate_error=error)
    template = "dashboard/_keys.html" if request.htmx else "dashboard/project.html"
    return render(request, template, context)


@login_required
def organization_members(request: HttpRequest, organization_id: str) -> HttpResponse:
    page = organization_page(request, organization_id)
    organization, membership = page.organization, page.membership
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
        "invitations": organization.invitations.filter(
            accepted_at__isnull=True, revoked_at__isnull=True
        ).order_by("-created_at"),
        "roles": Role.choices,
        "form": form,
        "projects": projects_for_user(user=request.user),
    }
    return render(request, "dashboard/members.html", context)


@login_required
@require_POST
def member_role_view(request: HttpRequest, organization_id: str, membership_id: str) -> HttpResponse:
    page = organization_page(request, organization_id)
    target = get_object_or_404(Membership, organization=page.organization, pk=membership_id)
    try:
        membership_change_role(membership=target, role=request.POST.get("role", ""), by=page.membership)
        messages.success(request, f"{target.user.email} is now {target.role}.")
    except MembershipError as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:members", organization_id=page.organization.pk)


@login_required
@require_POST
def member_remove_view(request: HttpRequest, organization_id: str, membership_id: str) -> HttpResponse:
    page = organization_page(request, organization_id)
    target = get_object_or_404(
        Membership.objects.select_related("user"), organization=page.organization, pk=membership_id
    )
    leaving = target.pk == page.membership.pk
    try:
        membership_remove(membership=target, by=page.membership)
    except MembershipError as exc:
        messages.error(request, str(exc))
        return redirect("dashboard:members", organization_id=page.organization.pk)
    if leaving:
        messages.success(request, f"You left {page.organization.name}.")
        return redirect("dashboard:home")
    messages.success(request, f"{target.user.email} was removed from {page.organization.name}.")
    return redirect("dashboard:members", organization_id=page.organization.pk)


@login_required
@require_POST
def invitation_revoke_view(request: HttpRequest, organization_id: str, invitation_id: str) -> HttpResponse:
    page = organization_page(request, organization_id)
    invitation = get_object_or_404(Invitation, organization=page.organization, pk=invitation_id)
    try:
        invitation_revoke(invitation=invitation, by=page.membership)
        messages.success(request, f"The invitation of {invitation.email} was withdrawn.")
    except MembershipError as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:members", organization_id=page.organization.pk)


@login_required
def project_new(request: HttpRequest, organization_id: str) -> HttpResponse:
    organization = organization_page(request, organization_id, manage=True).organization
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = project_create(organization=organization, name=form.cleaned_data["name"])
        return redirect("dashboard:project", project_id=project.pk)
    return render(
        request,
        "dashboard/project_new.html",
        {"organization": organization, "form": form, "projects": projects_for_user(user=request.user)},
    )
