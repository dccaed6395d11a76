"""The destination types of the contract and the settings each one takes.

A type's fields drive validation of `POST /v1/destinations` and the dashboard
form. Fields marked `secret` are credentials: stored encrypted, write-only.
Every type also takes `api_url`, which overrides the platform's default endpoint
(regional hosts, self-hosted installs, an egress proxy, tests).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from apps.routing.errors import ConfigError

MAX_VALUE_LENGTH = 4096
MAX_HEADERS = 32


@dataclass(frozen=True)
class Field:
    name: str
    kind: str = "string"  # string | url | choice | headers
    required: bool = False
    secret: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class DestinationType:
    type: str
    label: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


API_URL = Field("api_url", "url", help="Overrides the platform's default endpoint")


def _t(type_: str, label: str, *fields: Field) -> DestinationType:
    return DestinationType(
        type_, label, (*fields, API_URL) if not any(f.name == "api_url" for f in fields) else fields
    )


def _key(required: bool = True) -> Field:
    return Field("api_key", required=required, secret=True)


TYPES: dict[str, DestinationType] = {
    t.type: t
    for t in (
        _t("langsmith", "LangSmith", API_URL, _key(), Field("project", default="default")),
        _t(
            "langfuse",
            "Langfuse",
            Field("host", "url", default="https://cloud.langfuse.com"),
            Field("public_key", required=True),
            Field("secret_key", required=True, secret=True),
            Field("api", "choice", default="otlp", choices=("otlp", "ingestion")),
        ),
        _t("keywordsai", "Keywords AI", API_URL, _key()),
        _t("helicone", "Helicone", API_URL, _key()),
        _t("langwatch", "LangWatch", API_URL, _key()),
        _t(
            "phoenix", "Arize Phoenix", Field("endpoint", "url", required=True), _key(False), Field("project")
        ),
        _t(
            "otlp",
            "OpenTelemetry collector (OTLP/HTTP)",
            Field("endpoint", "url", required=True),
            Field("headers", "headers", secret=True),
            Field("protocol", "choice", default="http/protobuf", choices=("http/protobuf", "http/json")),
        ),
        _t(
            "datadog",
            "Datadog LLM Observability",
            Field("site", default="datadoghq.com"),
            _key(),
            Field("ml_app", required=True),
        ),
        _t("honeyhive", "HoneyHive", API_URL, _key(), Field("project", required=True)),
        _t("lunary", "Lunary", API_URL, _key(), Field("project")),
        _t(
            "mlflow",
            "MLflow",
            Field("tracking_uri", "url", required=True),
            Field("experiment_id", required=True),
        ),
        _t(
            "webhook",
            "Webhook",
            Field("url", "url", required=True),
            Field("secret", secret=True, help="whsec_... to sign requests per Standard Webhooks"),
            Field("headers", "headers", secret=True),
        ),
        _t(
            "s3",
            "Amazon S3 or S3-compatible storage",
            Field("bucket", required=True),
            Field("prefix", default="untrace/"),
            Field("region", default="us-east-1"),
            Field("endpoint_url", "url"),
            Field("access_key_id", required=True, secret=True),
            Field("secret_access_key", required=True, secret=True),
        ),
    )
}


def destination_type(name: Any, *, where: str = "type") -> DestinationType:
    if not isinstance(name, str) or name not in TYPES:
        raise ConfigError(where, f"unknown destination type {name!r}; known: {', '.join(sorted(TYPES))}")
    return TYPES[name]


def check_url(value: str, *, where: str) -> None:
    """http(s) only; private, loopback and link-local literal addresses are refused
    unless UNTRACE_ALLOW_PRIVATE_DESTINATIONS (self-hosted platforms, tests)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(where, "must be an http:// or https:// URL with a host")
    if settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS:
        return
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        raise ConfigError(where, "points at this machine (set UNTRACE_ALLOW_PRIVATE_DESTINATIONS to allow)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise ConfigError(
            where,
            "is a private, loopback or link-local address (set UNTRACE_ALLOW_PRIVATE_DESTINATIONS to allow)",
        )


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
