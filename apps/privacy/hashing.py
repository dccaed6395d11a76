"""The keyed hash that stands for an erased identifier in the suppression list."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def subject_hash(kind: str, value: str) -> str:
    """Hex HMAC-SHA256 of `kind:value` with UNTRACE_PRIVACY_HASH_KEY: the same subject
    (as the store keeps it) always gives the same digest, and the list cannot be reversed without the key."""
    key = settings.UNTRACE_PRIVACY_HASH_KEY.encode()
    # As the store keeps it (apps.traces.store.storable_text): U+0000 becomes U+FFFD.
    message = f"{kind}:{value.replace(chr(0), chr(0xFFFD))}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
