from __future__ import annotations

from django.db import models

from apps.core import crypto


class ProxySettings(models.Model):
    """A project's own proxy upstreams and provider keys.

    An empty upstream means the deployment's default (UNTRACE_OPENAI_UPSTREAM,
    UNTRACE_ANTHROPIC_UPSTREAM). A stored provider key is sent when the client's
    request carries none, so applications can hold only an Untrace key.
    """

    project = models.OneToOneField(
        "accounts.Project", primary_key=True, on_delete=models.CASCADE, related_name="proxy_settings"
    )
    openai_upstream = models.CharField(max_length=500, blank=True, default="")
    anthropic_upstream = models.CharField(max_length=500, blank=True, default="")
    openai_fallback_upstreams = models.JSONField(default=list, blank=True)
    anthropic_fallback_upstreams = models.JSONField(default=list, blank=True)
    openai_key_encrypted = models.TextField(blank=True, default="")
    anthropic_key_encrypted = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"proxy settings of {self.project_id}"

    def key(self, provider: str) -> str:
        token = getattr(self, f"{provider}_key_encrypted")
        return crypto.decrypt(token) if token else ""
