"""Process-local cache of API key lookups, so a warm check costs no I/O.

A revoked key is forgotten at once in the process that revoked it, and in
every other process within UNTRACE_KEY_CACHE_SECONDS.
"""

from __future__ import annotations

import time
from typing import Any

_entries: dict[str, tuple[float, Any]] = {}
_MAX_ENTRIES = 10_000


def get(lookup_id: str, ttl: float) -> Any | None:
    entry = _entries.get(lookup_id)
    if entry is None:
        return None
    stored_at, value = entry
    if time.monotonic() - stored_at > ttl:
        _entries.pop(lookup_id, None)
        return None
    return value


def put(lookup_id: str, value: Any) -> None:
    if len(_entries) >= _MAX_ENTRIES:
        _entries.clear()
    _entries[lookup_id] = (time.monotonic(), value)


def forget(lookup_id: str) -> None:
    _entries.pop(lookup_id, None)


def clear() -> None:
    _entries.clear()
