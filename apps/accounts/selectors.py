"""Reads of tenancy data, always from the point of view of a user."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from apps.accounts.models import Membership, Organization, Project, User


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization")


def memberships_with_projects(*, user: User) -> QuerySet[Membership]:
    """The user's memberships, by organization name, each with its organization's projects
    (by name) prefetched: what the organization switcher lists."""
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .prefetch_related(
            Prefetch("organization__projects", queryset=Project.objects.order_by("name", "created_at"))
        )
        .order_by("organization__name", "organization__created_at")
    )


def projects_for_user(*, user: User) -> QuerySet[Project]:
    return (
        Project.objects.filter(organization__memberships__user=user)
        .select_related("organization")
        .order_by("organization__name", "name")
    )


def membership_get(*, user: User, organization: Organization) -> Membership | None:
    return Membership.objects.filter(user=user, organization=organization).first()


def project_get_for_user(*, user: User, project_id: str | uuid.UUID) -> tuple[Project, Membership]:
    """The project and the user's membership in its organization; 404 for anyone else."""
    try:
        project_uuid = uuid.UUID(str(project_id))
    except ValueError as exc:
        raise Http404("No such project.") from exc
    project = Project.objects.select_related("organization").filter(pk=project_uuid).first()
    membership = project and membership_get(user=user, organization=project.organization)
    if project is None or membership is None:
        raise Http404("No such project.")
    return project, membership
