"""A project's routing configuration, kept as immutable numbered versions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.core.models import ProjectScopedQuerySet


class RoutingConfigVersion(models.Model):
    """One saved state of a project's whole routing document (rules, defaults,
    sampling, per-destination policies). Never changed after it is written: the
    worker applies exactly one version to a batch, and rollback writes a new
    version with an old document."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    document = models.JSONField()
    summary = models.CharField(max_length=500)
    changes = models.JSONField(default=list)  # RFC 6902 patch from the previous version
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_key = models.ForeignKey(
        "keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="uniq_routing_version")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"v{self.number}: {self.summary}"


class ProjectRouting(models.Model):
    """Which version is live for a project, and the project's redaction hash key."""

    project = models.OneToOneField(
        "accounts.Project", primary_key=True, on_delete=models.CASCADE, related_name="routing"
    )
    active_version = models.ForeignKey(
        RoutingConfigVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hash_key_encrypted = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"routing of {self.project_id}"
