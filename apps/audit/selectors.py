"""Reading the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from apps.audit.models import AuditEvent


def audit_events_visible(
    *,
    project_id: uuid.UUID,
    organization_id: uuid.UUID,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor_user_id: Any = None,
    actor_key_id: uuid.UUID | None = None,
) -> QuerySet[AuditEvent]:
    """The project's events and its organization's organization-level ones (no project)."""
    queryset = AuditEvent.objects.filter(
        Q(project_id=project_id) | Q(organization_id=organization_id, project__isnull=True)
    )
    return _filtered(
        queryset,
        action=action,
        since=since,
        until=until,
        actor_user_id=actor_user_id,
        actor_key_id=actor_key_id,
    )


def audit_events_of_organization(
    *,
    organization_id: uuid.UUID,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor_user_id: Any = None,
    actor_key_id: uuid.UUID | None = None,
) -> QuerySet[AuditEvent]:
    """Every event of the organization: its own and those of each of its projects."""
    return _filtered(
        AuditEvent.objects.filter(organization_id=organization_id),
        action=action,
        since=since,
        until=until,
        actor_user_id=actor_user_id,
        actor_key_id=actor_key_id,
    )


def _filtered(
    queryset: QuerySet[AuditEvent],
    *,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    actor_user_id: Any,
    actor_key_id: uuid.UUID | None,
) -> QuerySet[AuditEvent]:
    if action:
        queryset = queryset.filter(action=action)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    if actor_user_id is not None:
        queryset = queryset.filter(actor_user_id=actor_user_id)
    if actor_key_id is not None:
        queryset = queryset.filter(actor_key_id=actor_key_id)
    return queryset


class UnknownCursor(Exception):
    """`before` names no event of the list being paged."""


def audit_events_page(
    queryset: QuerySet[AuditEvent], *, before: uuid.UUID | None = None, limit: int = 50
) -> tuple[list[AuditEvent], bool]:
    """Up to `limit` events, newest first, older than the event `before` (which must be in
    `queryset`); and whether older ones remain. Keyset paging: stable while events are added."""
    ordered = queryset.select_related("actor_user", "project").order_by("-created_at", "-id")
    if before is not None:
        anchor = queryset.filter(pk=before).values_list("created_at", flat=True).first()
        if anchor is None:
            raise UnknownCursor(str(before))
        ordered = ordered.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, id__lt=before))
    events = list(ordered[: limit + 1])
    return events[:limit], len(events) > limit


def audit_facets(queryset: QuerySet[AuditEvent]) -> tuple[list[str], list[Any], list[uuid.UUID]]:
    """The actions, actor user ids and actor key ids that occur in `queryset`, for filters."""
    plain = queryset.order_by()
    actions = sorted(plain.values_list("action", flat=True).distinct())
    users = list(plain.filter(actor_user__isnull=False).values_list("actor_user_id", flat=True).distinct())
    keys = list(plain.filter(actor_key_id__isnull=False).values_list("actor_key_id", flat=True).distinct())
    return actions, users, keys


def audit_actor_names(
    *, organization_id: uuid.UUID, user_ids: Iterable[Any], key_ids: Iterable[uuid.UUID]
) -> tuple[dict[Any, str], dict[uuid.UUID, str]]:
    """Emails of actor users and names of actor keys (keys of the organization's projects only)."""
    from apps.accounts.models import User
    from apps.keys.models import ApiKey

    users = dict(User.objects.filter(pk__in=set(user_ids)).values_list("pk", "email"))
    keys = {
        pk: f"{name} (ut_{lookup_id}_…)"
        for pk, name, lookup_id in ApiKey.objects.filter(
            pk__in=set(key_ids), project__organization_id=organization_id
        ).values_list("pk", "name", "lookup_id")
    }
    return users, keys
