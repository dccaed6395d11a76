"""Privacy requests: erasures of a user's or a session's spans, and the suppression list
that keeps an erased subject out of the store and out of every destination afterwards.

Neither table holds the identifier in clear: subjects are kept as an HMAC-SHA256
(`apps.privacy.hashing`). An erasure still deleting in the background keeps the
identifier encrypted (Fernet, `UNTRACE_ENCRYPTION_KEYS`) until it is done, then forgets it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import ProjectScopedModel


class SubjectKind(models.TextChoices):
    USER = "user"
    SESSION = "session"


class ErasureStatus(models.TextChoices):
    RUNNING = "running"  # spans left to delete: a maintenance task carries on
    COMPLETED = "completed"


class Suppression(ProjectScopedModel):
    """An erased subject of a project: its spans are dropped at ingest and never routed."""

    kind = models.CharField(max_length=16, choices=SubjectKind.choices)
    value_hash = models.CharField(max_length=64)  # hex HMAC-SHA256 of the identifier
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_key_id = models.UUIDField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "kind", "value_hash"], name="uniq_suppression")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value_hash[:12]}"


class Erasure(ProjectScopedModel):
    """One erasure request and what it removed."""

    subject_kind = models.CharField(max_length=16, choices=SubjectKind.choices)
    subject_hash = models.CharField(max_length=64)
    # The identifier, encrypted, while spans are left to delete; emptied when completed.
    subject_encrypted = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=ErasureStatus.choices, default=ErasureStatus.RUNNING)
    spans_deleted = models.PositiveBigIntegerField(default=0)
    deliveries_changed = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_key_id = models.UUIDField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="erasure_project_idx")]

    def __str__(self) -> str:
        return f"erasure of a {self.subject_kind} ({self.status})"
