"""Small pieces shared by the ASGI routes that answer before Django (ingest, proxy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.core.client_ip import client_address


class ClientGone(Exception):
    """The client disconnected while its request was being read."""


async def read_body(receive: Callable, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit`."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def lowercase_headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def client_ip(scope: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The caller's address (see apps.core.client_ip)."""
    client = scope.get("client")
    return client_address(client[0] if client else None, headers.get("x-forwarded-for"))


async def send_response(
    send: Callable,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    """A whole response in two ASGI messages."""
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
