from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.core.models import ProjectScopedModel


class Scope(models.TextChoices):
    INGEST = "ingest", "Send traces"
    PROXY = "proxy", "Call LLMs through the proxy"
    READ = "read", "Read traces and configuration"
    WRITE = "write", "Change configuration and keys"


ALL_SCOPES = frozenset(Scope.values)


class ApiKey(ProjectScopedModel):
    """A project's API key. Only a SHA-256 of the secret is stored.

    The secret reads `ut_<lookup_id>_<secret>`: the prefix lets secret scanners
    find leaked keys, and the lookup id finds the row without a hash scan.
    """

    name = models.CharField(max_length=200)
    lookup_id = models.CharField(max_length=16, unique=True)
    hashed_secret = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    allowed_cidrs = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # The key's own rate limit; empty: its organization's plan. Never above the plan's.
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True)
    rate_limit_burst = models.PositiveIntegerField(null=True, blank=True)
    rotated_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rotated_to"
    )
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} (ut_{self.lookup_id}_…)"

    @property
    def display_prefix(self) -> str:
        return f"ut_{self.lookup_id}_…"

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"
