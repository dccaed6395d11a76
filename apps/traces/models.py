"""The trace store: PostgreSQL is the system of record for every accepted span."""

from __future__ import annotations

from django.db import models

from apps.core.models import ProjectScopedModel, ProjectScopedQuerySet


class IngestBatch(ProjectScopedModel):
    """The spans one request stored; the unit the route task works on.

    `routed_at` stays empty until routing finished, so a batch whose task was
    lost (broker down, worker killed) is found again by the reconciler.
    """

    source = models.CharField(max_length=16)  # http, batch, webhook, otlp, proxy
    api_key_id = models.UUIDField(null=True, blank=True)  # the key that sent it (none for signed webhooks)
    span_count = models.PositiveIntegerField(default=0)
    routed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], name="batch_unrouted_idx", condition=models.Q(routed_at__isnull=True)
            )
        ]


class Span(models.Model):
    """One canonical span. `span_id` is the client's id, unique per project."""

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    batch = models.ForeignKey(
        IngestBatch, null=True, on_delete=models.SET_NULL, related_name="spans", db_constraint=False
    )
    span_id = models.CharField(max_length=1024)
    trace_id = models.CharField(max_length=1024)
    parent_id = models.CharField(max_length=1024, null=True)
    session_id = models.CharField(max_length=1024, null=True)
    user_id = models.CharField(max_length=1024, null=True)
    name = models.CharField(max_length=1024, null=True)
    kind = models.CharField(max_length=16, default="llm")
    provider = models.CharField(max_length=1024, null=True)
    model = models.CharField(max_length=1024, null=True)
    status = models.CharField(max_length=8, default="ok")  # ok | error
    start_time = models.DateTimeField()
    end_time = models.DateTimeField(null=True)
    prompt_tokens = models.BigIntegerField(null=True)
    completion_tokens = models.BigIntegerField(null=True)
    total_tokens = models.BigIntegerField(null=True)
    cost = models.DecimalField(max_digits=20, decimal_places=8, null=True)
    latency_ms = models.FloatField(null=True)
    request = models.JSONField(null=True)
    response = models.JSONField(null=True)
    metadata = models.JSONField(null=True)
    metrics = models.JSONField(null=True)
    error = models.JSONField(null=True)
    attributes = models.JSONField(null=True)
    search_text = models.TextField(default="")  # input and output text, for `q`
    received_at = models.DateTimeField()

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "span_id"], name="uniq_span_per_project")]
        indexes = [
            models.Index(fields=["project", "-start_time", "-id"], name="span_project_time_idx"),
            models.Index(fields=["project", "trace_id"], name="span_trace_idx"),
            models.Index(fields=["project", "model", "-start_time"], name="span_model_idx"),
            models.Index(
                fields=["project", "-start_time"], name="span_error_idx", condition=models.Q(status="error")
            ),
            models.Index(
                fields=["project", "session_id"],
                name="span_session_idx",
                condition=models.Q(session_id__isnull=False),
            ),
            models.Index(
                fields=["project", "user_id"], name="span_user_idx", condition=models.Q(user_id__isnull=False)
            ),
            models.Index(fields=["batch"], name="span_batch_idx"),
            models.Index(fields=["received_at"], name="span_received_idx"),  # retention deletes
        ]

    def __str__(self) -> str:
        return f"{self.span_id} ({self.trace_id})"


class ModelPriceOverride(models.Model):
    """An organization's own price for a model (negotiated rates, fine-tunes, self-hosted).

    `model` is a model name or `provider/model`; it wins over the bundled table.
    """

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="price_overrides"
    )
    model = models.CharField(max_length=200)
    input_per_million = models.DecimalField(max_digits=14, decimal_places=6)
    output_per_million = models.DecimalField(max_digits=14, decimal_places=6)
    cached_input_per_million = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "model"], name="uniq_price_override")]

    def __str__(self) -> str:
        return self.model
