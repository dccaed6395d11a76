"""What the proxy reads from and strips off the headers of a proxied call.

Untrace's own headers (X-Untrace-*, the Untrace key among them) never reach the
provider; neither do the hop-by-hop headers of either connection nor the client's
address (X-Forwarded-*, Forwarded, X-Real-IP, Via). Everything else passes unchanged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

# RFC 9110 7.6.1, plus the ones the HTTP client sets itself for the new connection.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# The client's address and the proxies it came through are not the provider's business.
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "forwarded", "x-real-ip", "via"}
_NOT_RELAYED = frozenset(name.encode() for name in HOP_BY_HOP | {"date", "server"})
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
MAX_TAGS = 64


@dataclass(slots=True)
class CallMetadata:
    """Metadata of one proxied call, from the X-Untrace-* and traceparent headers."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def new_span_id() -> str:
    return os.urandom(8).hex()


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace_id, parent span id) of a valid W3C traceparent, else None."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, parent_id = match.group(2), match.group(3)
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id


def parse_tags(value: str | None) -> dict[str, str]:
    """`k=v,k2=v2` into a map; items without `=` or an empty key are skipped."""
    tags: dict[str, str] = {}
    for item in (value or "").split(","):
        key, sep, val = item.partition("=")
        key = key.strip()
        if sep and key and len(tags) < MAX_TAGS:
            tags[key] = val.strip()
    return tags


def parse_metadata(value: str | None) -> dict[str, Any]:
    """A JSON object; anything else is ignored (capture never fails the call)."""
    if not value:
        return {}
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def call_metadata(headers: dict[str, str]) -> CallMetadata:
    """The call's metadata; `headers` has lower-case names."""
    parent = parse_traceparent(headers.get("traceparent"))
    trace_id, parent_id = parent if parent else (os.urandom(16).hex(), None)
    return CallMetadata(
        trace_id=trace_id,
        span_id=new_span_id(),
        parent_id=parent_id,
        session_id=headers.get("x-untrace-session-id") or None,
        user_id=headers.get("x-untrace-user-id") or None,
        tags=parse_tags(headers.get("x-untrace-tags")),
        metadata=parse_metadata(headers.get("x-untrace-metadata")),
    )


def upstream_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The client's headers as sent on to the provider."""
    out = []
    for name, value in raw:
        lower = name.decode("latin-1").lower()
        if lower in _NOT_FORWARDED or lower.startswith(("x-untrace-", "x-forwarded-")):
            continue
        out.append((lower, value.decode("latin-1")))
    return out


def with_provider_key(headers: list[tuple[str, str]], provider: str, key: str) -> list[tuple[str, str]]:
    """Add the project's stored provider key when the client sent none of its own."""
    name = "authorization" if provider == "openai" else "x-api-key"
    if any(existing == name for existing, _ in headers):
        return headers
    value = f"Bearer {key}" if provider == "openai" else key
    return [*headers, (name, value)]


def client_headers(raw: tuple[tuple[bytes, bytes], ...], *, trace_id: str) -> list[tuple[bytes, bytes]]:
    """The provider's response headers as sent back to the client, plus the trace id. The
    ASGI server adds its own Date and Server headers, so the provider's are left out."""
    out = []
    for name, value in raw:
        lower = name.lower()
        if lower not in _NOT_RELAYED:
            out.append((lower, value))
    out.append((b"x-untrace-trace-id", trace_id.encode()))
    return out
