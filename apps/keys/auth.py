"""The one API-key check, shared by the DRF authentication class and the hot paths.

A warm check is a dict lookup, a SHA-256 and a few comparisons: no I/O. The
key row is cached per process (see `cache`), and `last_used_at` is written at
most once per UNTRACE_KEY_LAST_USED_INTERVAL per key and process.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from apps.core.client_ip import client_address
from apps.core.metrics import API_KEY_AUTH
from apps.core.ratelimit import Limit
from apps.keys import cache
from apps.keys.key_format import lookup_id_of
from apps.keys.models import ApiKey
from apps.keys.ratelimit import key_limit, plan_limit_annotations
from apps.keys.services import hash_secret

_last_touch: dict[uuid.UUID, float] = {}


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """Who is calling: a key of one project, with its scopes."""

    key_id: uuid.UUID
    project_id: uuid.UUID
    organization_id: uuid.UUID
    scopes: frozenset[str]
    hashed_secret: str
    revoked: bool
    expires_at: float | None  # epoch seconds
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    rate_limit: Limit | None = None  # None: unlimited (see apps.keys.ratelimit)

    @property
    def is_authenticated(self) -> bool:  # lets DRF treat the principal as request.user
        return True

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class KeyAuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_MISSING = object()


def _load(lookup_id: str) -> KeyPrincipal | None:
    row = (
        ApiKey.objects.filter(lookup_id=lookup_id)
        .annotate(**plan_limit_annotations())
        .values(
            "id",
            "project_id",
            "project__organization_id",
            "scopes",
            "hashed_secret",
            "revoked_at",
            "expires_at",
            "allowed_cidrs",
            "rate_limit_per_second",
            "rate_limit_burst",
            "plan_rate",
            "plan_burst",
        )
        .first()
    )
    if row is None:
        return None
    return KeyPrincipal(
        key_id=row["id"],
        project_id=row["project_id"],
        organization_id=row["project__organization_id"],
        scopes=frozenset(row["scopes"]),
        hashed_secret=row["hashed_secret"],
        revoked=row["revoked_at"] is not None,
        expires_at=row["expires_at"].timestamp() if row["expires_at"] else None,
        networks=tuple(ipaddress.ip_network(c) for c in row["allowed_cidrs"]),
        rate_limit=key_limit(
            key_rate=row["rate_limit_per_second"],
            key_burst=row["rate_limit_burst"],
            plan_rate=row["plan_rate"],
            plan_burst=row["plan_burst"],
        ),
    )


def _fail(status: int, code: str, message: str) -> KeyAuthError:
    API_KEY_AUTH.labels(code).inc()
    return KeyAuthError(status, code, message)


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key from X-Untrace-Key or a Bearer token; `headers` has lower-case names
    (or is case-insensitive, like Django's request.headers)."""
    key = headers.get("x-untrace-key")
    if key:
        return key.strip()
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def client_ip(meta: dict) -> str | None:
    """The caller's address from a Django request's META (see apps.core.client_ip)."""
    return client_address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


def authenticate_key(
    raw_key: str | None, *, client_ip: str | None = None, scope: str | None = None
) -> KeyPrincipal:
    """The principal of a valid key, or KeyAuthError (401 bad key, 403 not allowed)."""
    if not raw_key:
        raise _fail(401, "missing_key", "Missing API key: send X-Untrace-Key or Authorization: Bearer.")
    lookup_id = lookup_id_of(raw_key)
    if lookup_id is None:
        raise _fail(401, "invalid_key", "Invalid API key.")

    principal = cache.get(lookup_id, settings.UNTRACE_KEY_CACHE_SECONDS)
    if principal is None:
        loaded = _load(lookup_id)
        principal = loaded if loaded is not None else _MISSING
        cache.put(lookup_id, principal)
    if principal is _MISSING or not hmac.compare_digest(hash_secret(raw_key), principal.hashed_secret):
        raise _fail(401, "invalid_key", "Invalid API key.")
    if principal.revoked:
        raise _fail(401, "revoked_key", "This API key was revoked.")
    if principal.expires_at is not None and principal.expires_at <= time.time():
        raise _fail(401, "expired_key", "This API key has expired.")
    if principal.networks:
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            address = None
        if address is None or not any(address in net for net in principal.networks):
            raise _fail(403, "ip_not_allowed", f"This API key may not be used from {client_ip}.")
    if scope is not None and scope not in principal.scopes:
        raise _fail(403, "missing_scope", f"This API key lacks the '{scope}' scope.")
    API_KEY_AUTH.labels("ok").inc()
    _touch(principal.key_id)
    return principal


_MARGIN = 1.0  # seconds: keeps `key_needs_io`'s answer true until authenticate_key looks again


def key_needs_io(raw_key: str | None) -> bool:
    """Whether checking this key may touch the database (a cache miss, or a last use due
    to be recorded). Async callers check warm keys on the event loop and go to a thread
    only when this is true: a thread hop costs more than the check itself."""
    lookup_id = lookup_id_of(raw_key) if raw_key else None
    if lookup_id is None:
        return False  # refused without a lookup
    principal = cache.get(lookup_id, settings.UNTRACE_KEY_CACHE_SECONDS - _MARGIN)
    if principal is None:
        return True
    if principal is _MISSING:
        return False
    touched = _last_touch.get(principal.key_id)
    return touched is None or time.monotonic() - touched > settings.UNTRACE_KEY_LAST_USED_INTERVAL - _MARGIN


def _touch(key_id: uuid.UUID) -> None:
    now = time.monotonic()
    last = _last_touch.get(key_id)
    if last is not None and now - last < settings.UNTRACE_KEY_LAST_USED_INTERVAL:
        return
    _last_touch[key_id] = now
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
