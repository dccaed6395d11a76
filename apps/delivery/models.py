"""The delivery outbox and ledger: PostgreSQL is the source of truth for what
must still be sent; Celery messages carry only a destination id."""

from __future__ import annotations

from django.db import models

from apps.core.models import ProjectScopedModel


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # to send (now or at next_attempt_at)
    DELIVERED = "delivered"
    DEAD = "dead"  # dead letter: the last attempt failed, or the platform refused it for good
    REROUTED = "rerouted"  # handed to the rule's fallback destination
    CANCELLED = "cancelled"  # every span it carried was erased (privacy): nothing left to send


class Delivery(ProjectScopedModel):
    """Spans of one ingest batch for one destination.

    `items` holds, per span, what routing decided: `[span pk, owning rule id or
    null, role, sample rate, sampling policy]`. The payload is rendered from the
    stored span with `version` when it is sent, so a row stays small and a replay
    sends what routing chose. Rows are kept after delivery as the ledger.
    """

    destination = models.ForeignKey("destinations.Destination", on_delete=models.CASCADE, related_name="+")
    batch_id = models.UUIDField(null=True, blank=True)  # the ingest batch whose routing made it
    version = models.ForeignKey(
        "routing.RoutingConfigVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    role = models.CharField(max_length=16)  # primary | split | shadow | default | fallback
    fallback_destination = models.ForeignKey(
        "destinations.Destination", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fallback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    items = models.JSONField()
    span_count = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    expires_at = (
        models.DateTimeField()
    )  # after this the last failure dead-letters it (UNTRACE_DELIVERY_MAX_AGE)
    lease_until = models.DateTimeField(null=True, blank=True)  # claimed by a worker until then
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)  # delivered, dead or rerouted
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    item_errors = models.JSONField(null=True, blank=True)  # per-span refusals of a partial success
    replays = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["destination", "next_attempt_at"],
                name="delivery_due_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["project", "-created_at"], name="delivery_project_idx"),
            models.Index(fields=["batch_id"], name="delivery_batch_idx"),
            models.Index(fields=["project", "status", "-created_at"], name="delivery_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.span_count} spans to {self.destination_id} ({self.status})"
