"""Recording audit events. Recording never fails the change it records."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from apps.audit.models import AuditEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who made a change: a dashboard user or an API key (and where from, when known)."""

    user_id: Any = None
    key_id: uuid.UUID | None = None
    ip: str | None = None


def actor_fields(actor: Any, *, user_id: Any = None) -> dict[str, Any]:
    """`audit_record` keywords for an actor (any object with user_id / key_id / ip, or None);
    `user_id`, when given, names the user (a service's own `created_by` and the like)."""
    return {
        "actor_user_id": user_id if user_id is not None else getattr(actor, "user_id", None),
        "actor_key_id": getattr(actor, "key_id", None),
        "ip": getattr(actor, "ip", None),
    }


def actor_from_request(request: Any) -> Actor:
    """The API key (DRF request.auth) or signed-in user behind a request."""
    from apps.keys.auth import KeyPrincipal, client_ip

    principal = getattr(request, "auth", None)
    ip = client_ip(request.META) if hasattr(request, "META") else None
    if isinstance(principal, KeyPrincipal):
        return Actor(key_id=principal.key_id, ip=ip)
    user = getattr(request, "user", None)
    return Actor(user_id=user.pk if user is not None and user.is_authenticated else None, ip=ip)


def _valid_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def audit_record(
    *,
    action: str,
    organization_id: Any,
    project_id: Any = None,
    actor_user_id: Any = None,
    actor_key_id: uuid.UUID | None = None,
    target_type: str = "",
    target_id: Any = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent | None:
    """Store one event; `organization_id` may be None when `project_id` is given.
    Never raises: a failure is logged and the caller carries on (inside a savepoint,
    so the caller's transaction stays usable)."""
    try:
        with transaction.atomic():
            if organization_id is None:
                from apps.accounts.models import Project

                organization_id = Project.objects.values_list("organization_id", flat=True).get(pk=project_id)
            return AuditEvent.objects.create(
                action=action,
                organization_id=organization_id,
                project_id=project_id,
                actor_user_id=actor_user_id,
                actor_key_id=actor_key_id,
                target_type=target_type,
                target_id=str(target_id or ""),
                details=details or {},
                ip=_valid_ip(ip),
            )
    except Exception:
        logger.exception("audit event %s could not be recorded", action)
        return None
