"""Creating, revoking and rotating API keys."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Project, User
from apps.audit.services import actor_fields, audit_record
from apps.keys import cache
from apps.keys.key_format import LOOKUP_ID_LENGTH, new_key, random_base62
from apps.keys.models import ALL_SCOPES, ApiKey

MAX_ROTATION_GRACE = timedelta(days=7)


class KeyParamError(ValueError):
    """Bad key parameters; `field` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    # Keys carry ~238 bits of entropy, so a fast hash is safe (no brute force).
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    scopes = list(dict.fromkeys(scopes))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise KeyParamError("scopes", f"unknown scope {unknown[0]!r}; use {sorted(ALL_SCOPES)}")
    if not scopes:
        raise KeyParamError("scopes", "at least one scope is required")
    return sorted(scopes)


def validate_cidrs(cidrs: Iterable[str]) -> list[str]:
    normalised = []
    for index, cidr in enumerate(cidrs):
        try:
            normalised.append(str(ipaddress.ip_network(str(cidr).strip(), strict=False)))
        except ValueError as exc:
            raise KeyParamError(f"allowed_cidrs[{index}]", f"{cidr!r} is not an IP network") from exc
    return normalised


# The highest per-key rate (requests a second) or burst a key can be given.
RATE_LIMIT_MAX = 100_000


def validate_rate_limit(**values: int | None) -> None:
    """Each of `rate_limit_per_second` and `rate_limit_burst`: empty, or 1 to RATE_LIMIT_MAX."""
    for field, value in values.items():
        if value is not None and (isinstance(value, bool) or not 1 <= value <= RATE_LIMIT_MAX):
            raise KeyParamError(field, f"must be an integer from 1 to {RATE_LIMIT_MAX}, or null")


def key_update(*, key: ApiKey, actor=None, **changes: object) -> ApiKey:
    """Rename a key or change its rate limit (`name`, `rate_limit_per_second`,
    `rate_limit_burst`; None clears a limit: the plan's applies). Every process sees the
    new limit within UNTRACE_KEY_CACHE_SECONDS, this one at once."""
    unknown = set(changes) - {"name", "rate_limit_per_second", "rate_limit_burst"}
    if unknown:
        raise KeyParamError(sorted(unknown)[0], "cannot be changed")
    validate_rate_limit(**{f: v for f, v in changes.items() if f != "name"})
    changed = {field: value for field, value in changes.items() if getattr(key, field) != value}
    if changed:
        for field, value in changed.items():
            setattr(key, field, value)
        key.save(update_fields=[*changed, "updated_at"])
        audit_record(
            action="key.updated",
            organization_id=None,
            project_id=key.project_id,
            **actor_fields(actor),
            target_type="api_key",
            target_id=key.pk,
            details={"name": key.name, "lookup_id": key.lookup_id, "changed": changed},
        )
    cache.forget(key.lookup_id)
    return key


@transaction.atomic
def key_create(
    *,
    project: Project,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    allowed_cidrs: Iterable[str] = (),
    created_by: User | None = None,
    rotated_from: ApiKey | None = None,
    rate_limit_per_second: int | None = None,
    rate_limit_burst: int | None = None,
    actor=None,
) -> IssuedKey:
    if expires_at is not None and expires_at <= timezone.now():
        raise KeyParamError("expires_at", "must be in the future")
    validate_rate_limit(rate_limit_per_second=rate_limit_per_second, rate_limit_burst=rate_limit_burst)
    lookup_id = random_base62(LOOKUP_ID_LENGTH)
    secret = new_key(lookup_id)
    key = ApiKey.objects.create(
        project=project,
        name=name,
        lookup_id=lookup_id,
        hashed_secret=hash_secret(secret),
        scopes=validate_scopes(scopes),
        allowed_cidrs=validate_cidrs(allowed_cidrs),
        expires_at=expires_at,
        created_by=created_by,
        rotated_from=rotated_from,
        rate_limit_per_second=rate_limit_per_second,
        rate_limit_burst=rate_limit_burst,
    )
    if rotated_from is None:  # a rotation records its own event
        audit_record(
            action="key.created",
            organization_id=project.organization_id,
            project_id=project.pk,
            **actor_fields(actor, user_id=created_by.pk if created_by else None),
            target_type="api_key",
            target_id=key.pk,
            details={"name": key.name, "scopes": key.scopes, "lookup_id": key.lookup_id},
        )
    return IssuedKey(key=key, secret=secret)


def key_revoke(*, key: ApiKey, actor=None) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(
            action="key.revoked",
            organization_id=None,
            project_id=key.project_id,
            **actor_fields(actor),
            target_type="api_key",
            target_id=key.pk,
            details={"name": key.name, "lookup_id": key.lookup_id},
        )
    cache.forget(key.lookup_id)
    return key


@transaction.atomic
def key_rotate(
    *, key: ApiKey, grace: timedelta | None = None, created_by: User | None = None, actor=None
) -> IssuedKey:
    """A new key with the same settings; the old one keeps working for `grace`."""
    grace = settings.UNTRACE_KEY_ROTATION_GRACE if grace is None else grace
    if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
        limit = int(MAX_ROTATION_GRACE.total_seconds())
        raise KeyParamError("grace_seconds", f"must be between 0 and {limit}")
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is not None:
        raise KeyParamError("id", "a revoked key cannot be rotated")
    if hasattr(key, "rotated_to"):
        raise KeyParamError("id", "this key was already rotated; rotate its successor")
    issued = key_create(
        project=key.project,
        name=key.name,
        scopes=key.scopes,
        expires_at=key.expires_at if key.expires_at and key.expires_at > timezone.now() else None,
        allowed_cidrs=key.allowed_cidrs,
        created_by=created_by,
        rotated_from=key,
        rate_limit_per_second=key.rate_limit_per_second,
        rate_limit_burst=key.rate_limit_burst,
    )
    old_expiry = timezone.now() + grace
    if key.expires_at is None or key.expires_at > old_expiry:
        key.expires_at = old_expiry
        key.save(update_fields=["expires_at", "updated_at"])
    cache.forget(key.lookup_id)
    audit_record(
        action="key.rotated",
        organization_id=None,
        project_id=key.project_id,
        **actor_fields(actor, user_id=created_by.pk if created_by else None),
        target_type="api_key",
        target_id=key.pk,
        details={
            "name": key.name,
            "new_key_id": str(issued.key.pk),
            "grace_seconds": int(grace.total_seconds()),
        },
    )
    return issued
