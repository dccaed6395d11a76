"""The suppression list at work: spans of an erased user or session are dropped before
they are stored, and dropped again (and deleted) before a stored batch is routed.

Ingest reads a project's list through a per-process cache of
UNTRACE_SUPPRESSION_CACHE_SECONDS, so the hot path does no query while it is warm
and no HMAC at all for a project without suppressions. A span that slips past a
cache older than an erasure made in another process is caught by the route task,
which always reads the list fresh, deletes the span and never plans it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from apps.privacy.hashing import subject_hash
from apps.privacy.models import SubjectKind, Suppression

Entries = frozenset[tuple[str, str]]  # (kind, value hash)

_cache: dict[str, tuple[float, Entries]] = {}
_lock = threading.Lock()


def suppressions_of(project_id: uuid.UUID | str) -> Entries:
    """The project's suppression list, read now."""
    return frozenset(Suppression.objects.for_project(project_id).values_list("kind", "value_hash"))


def _cached(project_id: uuid.UUID | str) -> Entries:
    key = str(project_id)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    entries = suppressions_of(project_id)
    with _lock:
        _cache[key] = (now + settings.UNTRACE_SUPPRESSION_CACHE_SECONDS, entries)
    return entries


def forget(project_id: uuid.UUID | str | None = None) -> None:
    """Drop the cached list of a project (of every project with None)."""
    with _lock:
        if project_id is None:
            _cache.clear()
        else:
            _cache.pop(str(project_id), None)


def is_suppressed(entries: Entries, subject: Mapping[str, Any]) -> bool:
    """Whether a span (a stored row or a canonical document) belongs to an erased subject."""
    if not entries:
        return False
    user_id, session_id = subject.get("user_id"), subject.get("session_id")
    if isinstance(user_id, str) and (SubjectKind.USER.value, subject_hash("user", user_id)) in entries:
        return True
    return (
        isinstance(session_id, str)
        and (
            SubjectKind.SESSION.value,
            subject_hash("session", session_id),
        )
        in entries
    )


def rows_without_suppressed(
    project_id: uuid.UUID | str, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """The rows to store (those of no erased subject) and how many were dropped. Ingest path."""
    entries = _cached(project_id)
    if not entries:
        return rows, 0
    kept = [row for row in rows if not is_suppressed(entries, row)]
    return kept, len(rows) - len(kept)


def split_suppressed(
    project_id: uuid.UUID | str, stored: Iterable[tuple[int, Mapping[str, Any]]]
) -> tuple[list[tuple[int, Any]], list[int]]:
    """(row id, document) pairs split into those to route and the row ids of erased
    subjects, with the list read fresh. Route path."""
    stored = list(stored)
    entries = suppressions_of(project_id)
    if not entries:
        return stored, []
    keep, drop = [], []
    for pk, document in stored:
        if is_suppressed(entries, document):
            drop.append(pk)
        else:
            keep.append((pk, document))
    return keep, drop
