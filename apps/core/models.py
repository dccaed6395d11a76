"""Base models and the tenant-scoping query set every tenant-owned model uses."""

from __future__ import annotations

import uuid

from django.db import models


class TimeStampedModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ProjectScopedQuerySet(models.QuerySet):
    def for_project(self, project_id: uuid.UUID | str) -> ProjectScopedQuerySet:
        return self.filter(project_id=project_id)


class ProjectScopedModel(TimeStampedModel):
    """Data that belongs to one project: reach it with `Model.objects.for_project(...)`."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="+")

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        abstract = True
