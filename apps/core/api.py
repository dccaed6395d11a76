"""The base of every tenant-owned API resource.

`ProjectScopedViewSet.get_queryset` always filters by the calling key's project;
subclasses narrow it in `safely_get_queryset`. Overriding `get_queryset` itself
is refused at import time unless the override is marked with
`@dangerously_unscoped`, so a cross-tenant read cannot slip in by accident.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import exceptions, viewsets

from apps.core.errors import invalid_field


def dangerously_unscoped(method):
    method.dangerously_unscoped = True
    return method


class ProjectScopedViewSet(viewsets.GenericViewSet):
    model: type[Model]
    lookup_url_kwarg = "id"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        override = cls.__dict__.get("get_queryset")
        if override is not None and not getattr(override, "dangerously_unscoped", False):
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; override safely_get_queryset "
                "instead, or mark the override @dangerously_unscoped."
            )

    @property
    def project_id(self) -> uuid.UUID:
        return self.request.auth.project_id

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no caller
            return self.model.objects.none()
        return self.safely_get_queryset(self.model.objects.for_project(self.project_id))

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset

    def get_object(self) -> Model:
        raw_id = self.kwargs[self.lookup_url_kwarg]
        try:
            object_id = uuid.UUID(raw_id)
        except ValueError as exc:
            raise invalid_field("id", f"{raw_id!r} is not a valid UUID") from exc
        obj = self.get_queryset().filter(pk=object_id).first()
        if obj is None:
            raise exceptions.NotFound(f"No {self.model._meta.verbose_name} with id {object_id}.")
        self.check_object_permissions(self.request, obj)
        return obj
