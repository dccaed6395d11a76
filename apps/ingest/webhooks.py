"""Signed-webhook ingest (Standard Webhooks): endpoints, secrets, verification, replay."""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from apps.audit.services import actor_fields, audit_record
from apps.core import crypto
from apps.ingest.models import WebhookEndpoint, WebhookMessage

SECRET_PREFIX = "whsec_"
PREVIOUS_SECRET_GRACE = timedelta(hours=24)
REPLAY_WINDOW = timedelta(days=1)  # message ids are kept this long (signatures expire after 5 minutes)


class WebhookError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class VerifiedMessage:
    endpoint_id: uuid.UUID
    project_id: uuid.UUID
    organization_id: uuid.UUID
    message_id: str


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_create(
    *, project_id: uuid.UUID, name: str, enabled: bool = True, actor=None
) -> tuple[WebhookEndpoint, str]:
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(
        project_id=project_id, name=name, enabled=enabled, secret_encrypted=crypto.encrypt(secret)
    )
    audit_record(
        action="webhook_endpoint.created",
        organization_id=None,
        project_id=project_id,
        **actor_fields(actor),
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        details={"name": endpoint.name, "enabled": endpoint.enabled},
    )
    return endpoint, secret


def endpoint_update(*, endpoint: WebhookEndpoint, changes: dict[str, Any], actor=None) -> WebhookEndpoint:
    """Rename or enable/disable an endpoint (`changes`: name, enabled)."""
    before = {field: getattr(endpoint, field) for field in changes}
    for field, value in changes.items():
        setattr(endpoint, field, value)
    endpoint.save(update_fields=[*changes, "updated_at"])
    changed = {field: value for field, value in changes.items() if before[field] != value}
    if changed:
        audit_record(
            action="webhook_endpoint.updated",
            organization_id=None,
            project_id=endpoint.project_id,
            **actor_fields(actor),
            target_type="webhook_endpoint",
            target_id=endpoint.pk,
            details={"name": endpoint.name, "before": {f: before[f] for f in changed}, "after": changed},
        )
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint, actor=None) -> None:
    endpoint_id, project_id, name = endpoint.pk, endpoint.project_id, endpoint.name
    endpoint.delete()
    audit_record(
        action="webhook_endpoint.deleted",
        organization_id=None,
        project_id=project_id,
        **actor_fields(actor),
        target_type="webhook_endpoint",
        target_id=endpoint_id,
        details={"name": name},
    )


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor=None) -> str:
    """A new secret; the old one keeps verifying for PREVIOUS_SECRET_GRACE."""
    secret = new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = timezone.now() + PREVIOUS_SECRET_GRACE
    endpoint.secret_encrypted = crypto.encrypt(secret)
    endpoint.save(
        update_fields=[
            "secret_encrypted",
            "previous_secret_encrypted",
            "previous_secret_expires_at",
            "updated_at",
        ]
    )
    audit_record(
        action="webhook_endpoint.secret_rotated",
        organization_id=None,
        project_id=endpoint.project_id,
        **actor_fields(actor),
        target_type="webhook_endpoint",
        target_id=endpoint.pk,
        details={
            "name": endpoint.name,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at.isoformat(),
        },
    )
    return secret


def _secrets_of(endpoint: WebhookEndpoint) -> list[str]:
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires and expires > timezone.now():
        found.append(crypto.decrypt(endpoint.previous_secret_encrypted))
    return found


def webhook_verify(*, endpoint_id: uuid.UUID, headers: Mapping[str, str], body: bytes) -> VerifiedMessage:
    """Check the signature and timestamp (5-minute tolerance); 404 for an unknown or disabled endpoint."""
    endpoint = WebhookEndpoint.objects.select_related("project").filter(pk=endpoint_id, enabled=True).first()
    if endpoint is None:
        raise WebhookError(404, "not_found", "No such webhook endpoint.")
    wanted = {
        name: headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    missing = [name for name, value in wanted.items() if not value]
    if missing:
        raise WebhookError(401, "invalid_signature", f"Missing header {missing[0]}.")
    if "\x00" in wanted["webhook-id"]:  # PostgreSQL text cannot hold it; no HTTP header may either
        raise WebhookError(400, "invalid_request", "Header webhook-id may not contain NUL.")
    reason = "No matching signature."
    for secret in _secrets_of(endpoint):
        try:
            Webhook(secret).verify(body, wanted, json_parse=False)
        except WebhookVerificationError as exc:
            reason = f"{exc}."
            continue
        except (ValueError, binascii.Error, UnicodeDecodeError):
            reason = "Malformed webhook-signature header or body."
            continue
        return VerifiedMessage(
            endpoint.pk, endpoint.project_id, endpoint.project.organization_id, wanted["webhook-id"][:256]
        )
    raise WebhookError(401, "invalid_signature", reason)


def message_record(*, message: VerifiedMessage) -> bool:
    """Record the message id; False when it was seen before (a replay). Call inside the
    transaction that stores the message's spans, so a failed store can be retried."""
    try:
        with transaction.atomic():
            WebhookMessage.objects.create(endpoint_id=message.endpoint_id, message_id=message.message_id)
    except IntegrityError:
        return False
    WebhookEndpoint.objects.filter(pk=message.endpoint_id).update(last_received_at=timezone.now())
    return True


def messages_delete_old() -> int:
    deleted, _ = WebhookMessage.objects.filter(received_at__lt=timezone.now() - REPLAY_WINDOW).delete()
    return deleted
