"""The one error a routing configuration can be refused with."""

from __future__ import annotations


class ConfigError(ValueError):
    """A routing configuration that cannot run: `field` names the place in the
    submitted JSON (`rules[2].conditions.all[0].value`), `message` says why.
    The API answers it with 400 and both, so the user can fix the exact spot."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
