"""Creating and changing destinations; credentials are encrypted on the way in."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction

from apps.audit.services import actor_fields, audit_record
from apps.billing.services import destination_limit_check
from apps.core.errors import ApiError
from apps.destinations.models import Destination
from apps.destinations.types import destination_type, split_config


def _name_taken(name: str) -> ApiError:
    return ApiError(
        status_code=409,
        code="conflict",
        message=f"A destination named {name!r} already exists in this project.",
    )


def destination_create(
    *,
    project_id: uuid.UUID,
    name: str,
    type: str,  # noqa: A002 (named as the API field)
    config: dict[str, Any],
    enabled: bool = True,
    actor=None,
) -> Destination:
    dtype = destination_type(type)
    shown, secrets = split_config(dtype, config)
    destination = Destination(
        project_id=project_id, name=name, type=dtype.type, config=shown, enabled=enabled
    )
    destination.secrets = secrets
    try:
        with transaction.atomic():
            destination.save()
            destination_limit_check(project_id)  # 403 plan_limit, undoing the save
    except IntegrityError as exc:
        raise _name_taken(name) from exc
    audit_record(
        action="destination.created",
        organization_id=None,
        project_id=project_id,
        **actor_fields(actor),
        target_type="destination",
        target_id=destination.pk,
        details={"name": destination.name, "type": destination.type},
    )
    return destination


def destination_update(destination: Destination, actor=None, **changes: Any) -> Destination:
    """Apply a partial update; `config` merges into the stored settings."""
    changed = sorted(
        [field for field in changes if field != "config"]
        + [f"config.{name}" for name in changes.get("config") or {}]
    )
    if "config" in changes:
        dtype = destination_type(destination.type)
        destination.config, destination.secrets = split_config(
            dtype, changes.pop("config"), previous=(destination.config, destination.secrets)
        )
    if changes.get("enabled"):
        destination.disabled_reason = ""
    for field, value in changes.items():
        setattr(destination, field, value)
    try:
        with transaction.atomic():
            destination.save()
    except IntegrityError as exc:
        raise _name_taken(changes.get("name", destination.name)) from exc
    audit_record(
        action="destination.updated",
        organization_id=None,
        project_id=destination.project_id,
        **actor_fields(actor),
        target_type="destination",
        target_id=destination.pk,
        details={"name": destination.name, "changed": changed},
    )
    return destination


def destination_delete(destination: Destination, actor=None) -> None:
    """Delete a destination the live routing configuration does not name (409 otherwise)."""
    from apps.routing.services import destination_users  # routing builds on destinations

    users = destination_users(destination)
    if users:
        raise ApiError(
            status_code=409,
            code="destination_in_use",
            message=f"The routing configuration uses this destination ({', '.join(users)}); "
            "remove it there first.",
            details={"used_by": users},
        )
    destination_id = destination.pk
    destination.delete()
    audit_record(
        action="destination.deleted",
        organization_id=None,
        project_id=destination.project_id,
        **actor_fields(actor),
        target_type="destination",
        target_id=destination_id,
        details={"name": destination.name, "type": destination.type},
    )
