from __future__ import annotations

from django.db import models

from apps.core import crypto
from apps.core.models import ProjectScopedModel


class WebhookEndpoint(ProjectScopedModel):
    """A signed-webhook ingest endpoint: POST /v1/webhooks/{id}, Standard Webhooks signatures.

    The signing secret is stored encrypted (UNTRACE_ENCRYPTION_KEYS); after a
    rotation the previous secret keeps verifying until `previous_secret_expires_at`.
    """

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    last_received_at = models.DateTimeField(null=True, blank=True)

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)


class WebhookMessage(models.Model):
    """Message ids already taken, so a replayed `webhook-id` is ignored."""

    id = models.BigAutoField(primary_key=True)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="+")
    message_id = models.CharField(max_length=256)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "message_id"], name="uniq_webhook_message")
        ]

    def __str__(self) -> str:
        return self.message_id
