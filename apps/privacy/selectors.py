"""Reads for privacy requests, always within one project."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.privacy.models import Erasure, SubjectKind
from apps.traces.models import Span
from apps.traces.store import storable_text

SUBJECT_FIELDS = {SubjectKind.USER.value: "user_id", SubjectKind.SESSION.value: "session_id"}


def subject_spans(*, project_id: uuid.UUID | str, kind: str, value: str) -> QuerySet[Span]:
    """Every stored span of a user or a session of the project (through the partial
    user / session indexes)."""
    return Span.objects.for_project(project_id).filter(**{SUBJECT_FIELDS[kind]: storable_text(value)})


def erasures_of(*, project_id: uuid.UUID | str) -> QuerySet[Erasure]:
    return Erasure.objects.for_project(project_id)
