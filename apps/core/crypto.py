"""Secrets at rest: Fernet with the keys of UNTRACE_ENCRYPTION_KEYS (newest first).

Encryption always uses the newest key; decryption tries each, so keys rotate
by prepending a new one and re-encrypting at leisure (`rotate`).
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    pass


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.UNTRACE_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("cannot decrypt with any key in UNTRACE_ENCRYPTION_KEYS") from exc


def is_current(token: str) -> bool:
    """Whether the newest key encrypted `token` (nothing to rotate)."""
    try:
        Fernet(settings.UNTRACE_ENCRYPTION_KEYS[0].encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def rotate(token: str) -> str:
    """The same secret, encrypted with the newest key."""
    return _current().rotate(token.encode()).decode()
