"""What a transformation step may read besides the span, and what it reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TransformContext:
    """Per-project facts a step can use.

    `hash_key` keys the HMAC of hash-mode redaction, so one value maps to one
    token inside a project and to unrelated tokens across projects. `values` is
    what enrichment and expressions see under `context.`: `project` ({id, name}),
    `api_key` ({id, name} of the key that sent the batch, when known) and
    `environment` (the deployment's `UNTRACE_ENVIRONMENT`).
    """

    hash_key: bytes
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TransformReport:
    """What a pipeline did to one span: counts only, never the values it removed."""

    redactions: Counter[str] = field(default_factory=Counter)
    truncated: list[str] = field(default_factory=list)  # paths cut to size
    changed: list[str] = field(default_factory=list)  # paths set, moved, renamed or dropped

    def as_dict(self) -> dict[str, Any]:
        return {
            "redactions": dict(self.redactions),
            "truncated": list(self.truncated),
            "changed": list(self.changed),
        }
