"""Per-project proxy upstreams and provider keys, and the process cache the
proxy route reads them through (the request path must not query per call)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.audit.services import actor_fields, audit_record
from apps.core import crypto
from apps.destinations.types import check_url
from apps.proxy.models import ProxySettings
from apps.routing.errors import ConfigError

PROVIDERS = ("openai", "anthropic")
MAX_KEY_LENGTH = 500
MAX_FALLBACKS = 5


@dataclass(frozen=True)
class ProxyTarget:
    """Where a project's calls go and the provider keys to add when the client sends none."""

    upstreams: dict[str, str]  # provider -> base URL ('' = the deployment default)
    keys: dict[str, str]  # provider -> key ('' = none stored)
    fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # provider -> fallback base URLs

    def bases(self, provider: str, default: str, default_fallbacks: list[str]) -> list[str]:
        """Upstreams to try in order: the project's (or the default), then the fallbacks."""
        fallbacks = self.fallbacks.get(provider) or tuple(u.rstrip("/") for u in default_fallbacks)
        primary = self.upstreams.get(provider) or default
        return list(dict.fromkeys([primary, *fallbacks]))


NO_OVERRIDES = ProxyTarget({}, {})
_cache: dict[uuid.UUID, tuple[float, ProxyTarget]] = {}
_lock = threading.Lock()


def proxy_target(project_id: uuid.UUID) -> ProxyTarget:
    """The project's overrides, cached per process for UNTRACE_KEY_CACHE_SECONDS."""
    now = time.monotonic()
    cached = _cache.get(project_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = ProxySettings.objects.filter(project_id=project_id).first()
    target = (
        ProxyTarget(
            {p: getattr(row, f"{p}_upstream").rstrip("/") for p in PROVIDERS},
            {p: row.key(p) for p in PROVIDERS},
            {p: tuple(getattr(row, f"{p}_fallback_upstreams")) for p in PROVIDERS},
        )
        if row
        else NO_OVERRIDES
    )
    with _lock:
        _cache[project_id] = (now + settings.UNTRACE_KEY_CACHE_SECONDS, target)
    return target


def cached_proxy_target(project_id: uuid.UUID) -> ProxyTarget | None:
    """The cached overrides if still fresh (no I/O: safe on the event loop)."""
    cached = _cache.get(project_id)
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def forget(project_id: uuid.UUID | None = None) -> None:
    with _lock:
        if project_id is None:
            _cache.clear()
        else:
            _cache.pop(project_id, None)


def proxy_settings_view(project_id: uuid.UUID) -> dict[str, Any]:
    """What the API shows: upstreams, and which keys are stored (never the keys)."""
    row = ProxySettings.objects.filter(project_id=project_id).first()
    return {
        "openai_upstream": row.openai_upstream if row else "",
        "anthropic_upstream": row.anthropic_upstream if row else "",
        "openai_fallback_upstreams": row.openai_fallback_upstreams if row else [],
        "anthropic_fallback_upstreams": row.anthropic_fallback_upstreams if row else [],
        "openai_key_set": bool(row and row.openai_key_encrypted),
        "anthropic_key_set": bool(row and row.anthropic_key_encrypted),
        "defaults": {
            "openai_upstream": settings.UNTRACE_OPENAI_UPSTREAM,
            "anthropic_upstream": settings.UNTRACE_ANTHROPIC_UPSTREAM,
            "openai_fallback_upstreams": settings.UNTRACE_OPENAI_FALLBACK_UPSTREAMS,
            "anthropic_fallback_upstreams": settings.UNTRACE_ANTHROPIC_FALLBACK_UPSTREAMS,
        },
    }


def proxy_settings_save(*, project_id: uuid.UUID, changes: dict[str, Any], actor=None) -> dict[str, Any]:
    """Apply a partial update: `*_upstream` ('' = default), `*_fallback_upstreams` (tried in
    order when the main one fails), `*_key` (null or '' clears it)."""
    allowed = {f"{p}_{k}" for p in PROVIDERS for k in ("upstream", "key", "fallback_upstreams")}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ConfigError(unknown[0], f"is not a proxy setting; known: {', '.join(sorted(allowed))}")
    row, _ = ProxySettings.objects.get_or_create(project_id=project_id)
    for provider in PROVIDERS:
        upstream_field, key_field = f"{provider}_upstream", f"{provider}_key"
        if upstream_field in changes:
            value = changes[upstream_field]
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise ConfigError(upstream_field, "must be a URL string, or empty for the default")
            if value:
                check_url(value, where=upstream_field)
            setattr(row, upstream_field, value.rstrip("/"))
        fallback_field = f"{provider}_fallback_upstreams"
        if fallback_field in changes:
            value = changes[fallback_field] or []
            if not isinstance(value, list) or len(value) > MAX_FALLBACKS:
                raise ConfigError(
                    fallback_field, f"must be a list of at most {MAX_FALLBACKS} URLs, tried in order"
                )
            for index, url in enumerate(value):
                if not isinstance(url, str) or not url:
                    raise ConfigError(f"{fallback_field}[{index}]", "must be a URL string")
                check_url(url, where=f"{fallback_field}[{index}]")
            setattr(row, fallback_field, [url.rstrip("/") for url in value])
        if key_field in changes:
            value = changes[key_field]
            if value not in (None, "") and (not isinstance(value, str) or len(value) > MAX_KEY_LENGTH):
                raise ConfigError(key_field, f"must be a string of at most {MAX_KEY_LENGTH} characters")
            setattr(row, f"{key_field}_encrypted", crypto.encrypt(value) if value else "")
    row.save()
    forget(project_id)
    audit_record(
        action="proxy_settings.changed",
        organization_id=None,
        project_id=project_id,
        **actor_fields(actor),
        target_type="proxy_settings",
        target_id=row.pk,
        details={"changed": sorted(changes)},
    )
    return proxy_settings_view(project_id)
