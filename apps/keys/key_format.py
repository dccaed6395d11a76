"""The API key format: `ut_<lookup id>_<random><checksum>`.

Like GitHub's tokens, a key ends in a CRC32 checksum of everything before it
(six base62 characters), so a secret scanner can tell a real key from a string
that merely looks like one (`KEY_PATTERN`), and a mistyped or made-up key is
refused before any lookup.
"""

from __future__ import annotations

import re
import secrets
import string
import zlib

KEY_PREFIX = "ut_"
LOOKUP_ID_LENGTH = 12
RANDOM_LENGTH = 34  # ~202 bits, on top of the lookup id's ~71
CHECKSUM_LENGTH = 6
SECRET_LENGTH = RANDOM_LENGTH + CHECKSUM_LENGTH
KEY_LENGTH = len(KEY_PREFIX) + LOOKUP_ID_LENGTH + 1 + SECRET_LENGTH

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase  # base62, one token
KEY_PATTERN = re.compile(rf"\b{KEY_PREFIX}[0-9A-Za-z]{{{LOOKUP_ID_LENGTH}}}_[0-9A-Za-z]{{{SECRET_LENGTH}}}\b")


def random_base62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def checksum(body: str) -> str:
    """Base62 of the CRC32 of `body`, left-padded to six characters."""
    value = zlib.crc32(body.encode())
    digits = []
    while value:
        value, remainder = divmod(value, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(CHECKSUM_LENGTH, "0")


def new_key(lookup_id: str) -> str:
    body = f"{KEY_PREFIX}{lookup_id}_{random_base62(RANDOM_LENGTH)}"
    return body + checksum(body)


def lookup_id_of(raw_key: str) -> str | None:
    """The lookup id of a well-formed key (right length, prefix and checksum), else None."""
    if len(raw_key) != KEY_LENGTH or not raw_key.startswith(KEY_PREFIX):
        return None
    body, check = raw_key[:-CHECKSUM_LENGTH], raw_key[-CHECKSUM_LENGTH:]
    if checksum(body) != check:
        return None
    return raw_key[len(KEY_PREFIX) : len(KEY_PREFIX) + LOOKUP_ID_LENGTH]
