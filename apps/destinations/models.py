from __future__ import annotations

import orjson
from django.db import models

from apps.core import crypto
from apps.core.models import ProjectScopedModel


class Destination(ProjectScopedModel):
    """An observability platform a project's traces are delivered to.

    `config` holds the settings that may be shown (URLs, project names); the
    credentials (`secret` fields of the type) live encrypted in
    `secrets_encrypted` and never leave through the API.
    """

    name = models.CharField(max_length=200)
    type = models.CharField(max_length=32)
    config = models.JSONField(default=dict)
    secrets_encrypted = models.TextField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="uniq_destination_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"

    @property
    def secrets(self) -> dict[str, object]:
        return orjson.loads(crypto.decrypt(self.secrets_encrypted)) if self.secrets_encrypted else {}

    @secrets.setter
    def secrets(self, values: dict[str, object]) -> None:
        self.secrets_encrypted = crypto.encrypt(orjson.dumps(values).decode()) if values else ""
