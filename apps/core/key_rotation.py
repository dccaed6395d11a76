"""Re-encrypting every secret at rest with the newest key of UNTRACE_ENCRYPTION_KEYS.

By convention every encrypted column is a text field named `*_encrypted`, so a
new one is found without being listed here. allauth's MFA authenticators keep
their encrypted TOTP secret and recovery-code seed inside a JSON column.
"""

from __future__ import annotations

from collections import Counter

from allauth.mfa.models import Authenticator
from django.apps import apps
from django.db import models, transaction

from apps.core import crypto

BATCH = 500
_MFA_KEYS = ("secret", "seed")


def encrypted_columns() -> list[tuple[type[models.Model], str]]:
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.name.endswith("_encrypted") and isinstance(field, models.TextField | models.CharField)
    ]


def _rows(model: type[models.Model], fields: list[str]):
    """Rows in primary-key order, a batch at a time, each batch in its own transaction."""
    last = None
    while True:
        with transaction.atomic():
            query = model._default_manager.select_for_update().order_by("pk")
            if last is not None:
                query = query.filter(pk__gt=last)
            batch = list(query.only("pk", *fields)[:BATCH])
            if not batch:
                return
            yield batch
            last = batch[-1].pk


def _stale(value) -> bool:
    return isinstance(value, str) and bool(value) and not crypto.is_current(value)


def reencrypt_all(*, dry_run: bool = False) -> Counter[str]:
    """Rewrite every value not encrypted with the newest key; counts per column."""
    counts: Counter[str] = Counter()
    by_model: dict[type[models.Model], list[str]] = {}
    for model, field in encrypted_columns():
        by_model.setdefault(model, []).append(field)
    for model, fields in by_model.items():
        for batch in _rows(model, fields):
            for row in batch:
                changed = [field for field in fields if _stale(getattr(row, field))]
                for field in changed:
                    setattr(row, field, crypto.rotate(getattr(row, field)))
                    counts[f"{model._meta.label}.{field}"] += 1
                if changed and not dry_run:
                    row.save(update_fields=changed)
    for batch in _rows(Authenticator, ["data"]):
        for authenticator in batch:
            stale = [key for key in _MFA_KEYS if _stale(authenticator.data.get(key))]
            for key in stale:
                authenticator.data[key] = crypto.rotate(authenticator.data[key])
                counts[f"mfa.Authenticator.data.{key}"] += 1
            if stale and not dry_run:
                authenticator.save(update_fields=["data"])
    return counts
