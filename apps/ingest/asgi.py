"""The ingest fast path: POSTs to the ingest endpoints skip Django's middleware.

Django under ASGI runs each sync middleware through a thread hop (measured at
about 5 ms per request here for the project's middleware stack), and all sync
views on a single thread, so one web process would do one request at a time.
This router answers the four ingest endpoints itself: it reads the body, runs
the same `core` function the Django views call on a thread pool (each thread
with its own database connection), and passes every other request to Django.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections

from apps.core.asgi import ClientGone, client_ip, lowercase_headers, read_body, send_response
from apps.core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from apps.ingest import core
from apps.ingest.limits import span_limits

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

_EXACT = {
    "/v1/traces": ("ingest-single", core.ingest_single),
    "/v1/traces/batch": ("ingest-batch", core.ingest_batch),
    "/otlp/v1/traces": ("ingest-otlp", core.ingest_otlp),
}
_WEBHOOK = re.compile(r"^/v1/webhooks/([^/]+)$")
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ingest")


def _route(path: str) -> tuple[str, Callable[..., core.IngestResponse], tuple[str, ...]] | None:
    if path in _EXACT:
        name, handler = _EXACT[path]
        return name, handler, ()
    match = _WEBHOOK.match(path)
    if match:
        return "ingest-webhook", core.ingest_webhook, (match.group(1),)
    return None


def _run(
    handler: Callable[..., core.IngestResponse], request: core.IngestRequest, args: tuple[str, ...]
) -> core.IngestResponse:
    # What Django's request_started/finished signals do for its own thread.
    close_old_connections()
    try:
        return handler(request, *args)
    finally:
        close_old_connections()


def with_ingest_fast_path(django_app: ASGIApp) -> ASGIApp:
    async def app(scope: Scope, receive: Callable, send: Callable) -> None:
        route = (
            _route(scope.get("path", "")) if scope["type"] == "http" and scope["method"] == "POST" else None
        )
        if route is None:
            await django_app(scope, receive, send)
            return
        name, handler, args = route
        started = time.perf_counter()
        headers = lowercase_headers(scope)
        limit = span_limits().max_body_bytes
        declared = headers.get("content-length", "")
        try:
            body = None if declared.isdigit() and int(declared) > limit else await read_body(receive, limit)
        except ClientGone:
            return
        if body is None:
            response = core.IngestError(
                413, "payload_too_large", f"the request body is larger than {limit} bytes"
            ).response
        else:
            request = core.IngestRequest(headers=headers, body=body, client_ip=client_ip(scope, headers))
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(_pool, _run, handler, request, args)
        await send_response(
            send, response.status, response.body, content_type=response.content_type, headers=response.headers
        )
        HTTP_REQUESTS.labels("POST", name, str(response.status)).inc()
        HTTP_LATENCY.labels(name).observe(time.perf_counter() - started)

    return app
