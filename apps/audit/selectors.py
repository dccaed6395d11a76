"""Reading the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Q, QuerySet

from apps.audit.models import AuditEvent


def audit_events_visible(
    *,
    project_id: uuid.UUID,
    organization_id: uuid.UUID,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The project's events and its organization's organization-level ones (no project)."""
    queryset = AuditEvent.objects.filter(
        Q(project_id=project_id) | Q(organization_id=organization_id, project__isnull=True)
    )
    if action:
        queryset = queryset.filter(action=action)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    return queryset
