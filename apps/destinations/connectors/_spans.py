"""Helpers shared by the LLM-platform connectors: reading canonical spans
(times, ids, tags, hierarchy) and splitting payloads under a platform's limits.

Not a connector itself (no `Connector` subclass), so the registry ignores it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

# Fixed namespace for ids derived from canonical ids: the same canonical id
# always gives the same UUID, so a re-sent span keeps its platform id.
UNTRACE_NAMESPACE = uuid.UUID("5b1f8f0e-9c1d-5d0a-8a51-7d0b3b6f2c11")


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string (or datetime) as an aware UTC datetime; None if absent or unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def start_of(span: dict[str, Any]) -> datetime | None:
    """When the span started; the end or arrival time stands in when the start is missing."""
    return (
        parse_time(span.get("start_time"))
        or parse_time(span.get("end_time"))
        or parse_time(span.get("received_at"))
    )


def end_of(span: dict[str, Any]) -> datetime | None:
    return parse_time(span.get("end_time"))


def iso(moment: datetime | None) -> str | None:
    """UTC ISO-8601 with microseconds and a Z suffix."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def stable_uuid(value: Any) -> uuid.UUID:
    """The id itself when it is a UUID (32 hex digits included), else uuid5 of it."""
    text = str(value)
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.uuid5(UNTRACE_NAMESPACE, text)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def tags_of(span: dict[str, Any]) -> dict[str, str]:
    """`metadata.tags` ({str: str}) as strings."""
    tags = as_dict(as_dict(span.get("metadata")).get("tags"))
    return {str(k): str(v) for k, v in tags.items()}


def tag_list(span: dict[str, Any]) -> list[str]:
    """Tags as "key:value" strings, the form most platforms index."""
    return [f"{k}:{v}" for k, v in tags_of(span).items()]


def usage_of(span: dict[str, Any]) -> dict[str, Any]:
    return as_dict(as_dict(span.get("response")).get("usage"))


def metrics_of(span: dict[str, Any]) -> dict[str, Any]:
    return as_dict(span.get("metrics"))


def number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def error_text(span: dict[str, Any]) -> str | None:
    """The error as one string ("Type: message" then the stack), or None for a span that went fine."""
    error = as_dict(span.get("error"))
    if not error and span.get("status") != "error":
        return None
    head = ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part)
    text = "\n\n".join(part for part in (head, str(error.get("stack") or "")) if part)
    return text or "error"


def is_error(span: dict[str, Any]) -> bool:
    return span.get("status") == "error" or bool(span.get("error"))


def ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """The span's ancestors present in `by_id`, root-most first, and the id of the
    first missing one (None when the chain reaches a span without a parent)."""
    chain: list[dict[str, Any]] = []
    seen = {span.get("id")}
    parent_id = span.get("parent_id")
    while parent_id:
        parent = by_id.get(parent_id)
        if parent is None or parent_id in seen:
            break
        seen.add(parent_id)
        chain.append(parent)
        parent_id = parent.get("parent_id")
    chain.reverse()
    return chain, (parent_id or None)


def split_bodies(
    items: list[Any], encode: Callable[[list[Any]], bytes], *, max_items: int, max_bytes: int
) -> list[tuple[bytes, list[Any]]]:
    """Encoded bodies of at most `max_items` items and `max_bytes` bytes, halving
    a part that is too large (a single larger item still goes alone)."""
    out: list[tuple[bytes, list[Any]]] = []
    pending = [items[i : i + max_items] for i in range(0, len(items), max_items)]
    while pending:
        part = pending.pop(0)
        body = encode(part)
        if len(body) > max_bytes and len(part) > 1:
            half = len(part) // 2
            pending[:0] = [part[:half], part[half:]]
            continue
        out.append((body, part))
    return out


def group_by(items: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, list]:
    groups: dict[Any, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups
