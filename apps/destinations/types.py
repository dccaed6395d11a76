"""Destination types and the validation of their settings.

Each connector declares its settings (`Connector.fields`); they drive validation
of `POST /v1/destinations` and the dashboard form. Fields marked `secret` are
credentials: stored encrypted, write-only. Every type also takes `api_url`,
which overrides the platform's default endpoint (regional hosts, self-hosted
installs, an egress proxy, tests).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from apps.core import outbound
from apps.destinations.connectors import connector_for, connector_types
from apps.destinations.connectors.base import Field
from apps.routing.errors import ConfigError

MAX_VALUE_LENGTH = 4096
MAX_HEADERS = 32


@dataclass(frozen=True)
class DestinationType:
    type: str
    label: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


API_URL = Field("api_url", "url", help="Overrides the platform's default endpoint")


@functools.cache
def destination_types() -> dict[str, DestinationType]:
    """Every registered connector's type, its label and settings (plus `api_url`)."""
    types = {}
    for name in connector_types():
        connector = connector_for(name)
        fields = connector.fields if connector.field_named("api_url") else (*connector.fields, API_URL)
        types[name] = DestinationType(name, connector.label, fields)
    return types


def destination_type(name: Any, *, where: str = "type") -> DestinationType:
    types = destination_types()
    if not isinstance(name, str) or name not in types:
        raise ConfigError(where, f"unknown destination type {name!r}; known: {', '.join(sorted(types))}")
    return types[name]


def check_url(value: str, *, where: str) -> None:
    """http(s) only; a host resolving to a private, loopback, link-local or other
    non-public address is refused unless UNTRACE_ALLOW_PRIVATE_DESTINATIONS
    (`apps.core.outbound`, which checks again at every new connection)."""
    try:
        outbound.check_url(value)
    except outbound.InvalidURL as exc:
        raise ConfigError(where, str(exc)) from exc
    except outbound.AddressNotAllowed as exc:
        raise ConfigError(where, exc.reason) from exc


def _value(field: Field, value: Any, *, where: str) -> Any:
    if field.kind == "headers":
        if not isinstance(value, dict) or len(value) > MAX_HEADERS:
            raise ConfigError(
                where, f"must be an object of at most {MAX_HEADERS} header names to string values"
            )
        for name, header in value.items():
            if not isinstance(header, str) or not name or "\n" in name + header or "\r" in name + header:
                raise ConfigError(f"{where}.{name}", "must be a single-line string")
        return dict(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, "must be a non-empty string")
    if len(value) > MAX_VALUE_LENGTH:
        raise ConfigError(where, f"is longer than {MAX_VALUE_LENGTH} characters")
    if field.kind == "url":
        check_url(value, where=where)
    if field.kind == "choice" and value not in field.choices:
        raise ConfigError(where, f"must be one of {', '.join(field.choices)}")
    return value


def split_config(
    dtype: DestinationType, config: Any, *, previous: tuple[dict, dict] | None = None, where: str = "config"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate `config` for the type and split it into (shown settings, secrets).

    With `previous` (an update), keys left out keep their stored values, a
    secret included replaces the stored one, and `null` clears an optional field.
    """
    if not isinstance(config, dict):
        raise ConfigError(where, "must be an object")
    shown, secrets = (dict(previous[0]), dict(previous[1])) if previous else ({}, {})
    for name, value in config.items():
        field = dtype.field(name)
        if field is None:
            known = ", ".join(f.name for f in dtype.fields)
            raise ConfigError(f"{where}.{name}", f"is not a setting of {dtype.type}; known: {known}")
        target = secrets if field.secret else shown
        if value is None:
            target.pop(name, None)
            continue
        target[name] = _value(field, value, where=f"{where}.{name}")
    for field in dtype.fields:
        present = field.name in (secrets if field.secret else shown)
        if not present and field.default is not None:
            shown[field.name] = field.default
        elif not present and field.required:
            raise ConfigError(f"{where}.{field.name}", f"is required for {dtype.type}")
    return shown, secrets
