"""The OpenAI- and Anthropic-compatible proxy, as a lean ASGI route in front of Django.

`ANY /v1/proxy/{openai|anthropic}/{path}` is answered here, fully async, without
Django's middleware: check the Untrace key, read the body, send it on to the
provider over a pooled aiohttp session, and relay the answer (status, headers
minus hop-by-hop, body bytes) unchanged; server-sent events chunk by chunk as
they arrive. The call's bytes and timings go to the trace writer afterwards.
This app also answers the ASGI lifespan: at startup it freezes the objects
loaded so far out of the garbage collector's passes; on shutdown it closes the
upstream pools and flushes the traces still queued.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import orjson
from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections

from apps.budgets.metrics import BUDGET_REFUSALS
from apps.budgets.spend import budget_block
from apps.core.asgi import ClientGone, client_ip, lowercase_headers, read_body, send_response
from apps.core.errors import error_body
from apps.core.metrics import PROXY_FALLBACKS, PROXY_REQUESTS
from apps.core.ratelimit import ip_refusal
from apps.keys.auth import KeyAuthError, KeyPrincipal, authenticate_key, key_needs_io
from apps.keys.ratelimit import AUTH_FAILURES, auth_failure_take_async, key_refusal, key_take_async
from apps.proxy import breaker, upstream
from apps.proxy.capture import ProxiedCall
from apps.proxy.headers import call_metadata, client_headers, upstream_headers, with_provider_key
from apps.proxy.project_settings import NO_OVERRIDES, ProxyTarget, cached_proxy_target, proxy_target
from apps.proxy.writer import flush_traces, trace_writer

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]

PREFIX = "/v1/proxy/"
_STREAM_ABOVE_BYTES = 1024 * 1024  # larger answers are relayed chunk by chunk, not read whole
# Key checks that may query PostgreSQL (a cold cache, a last use to record) run here.
_auth_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="proxy-auth")


def _authenticate_in_thread(raw_key: str | None, client_ip: str | None) -> KeyPrincipal:
    close_old_connections()
    try:
        return authenticate_key(raw_key, client_ip=client_ip, scope="proxy")
    finally:
        close_old_connections()


def _target_in_thread(project_id) -> ProxyTarget:
    close_old_connections()
    try:
        return proxy_target(project_id)
    finally:
        close_old_connections()


async def _authenticate(raw_key: str | None, client_ip: str | None) -> KeyPrincipal:
    if not key_needs_io(raw_key):
        try:
            return authenticate_key(raw_key, client_ip=client_ip, scope="proxy")
        except SynchronousOnlyOperation:
            pass
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_auth_pool, _authenticate_in_thread, raw_key, client_ip)


async def _send_error(
    send: Callable, status: int, code: str, message: str, trace_id: str | None = None
) -> None:
    headers = {}
    if trace_id:
        headers["x-untrace-trace-id"] = trace_id
    if status == 503:
        headers["retry-after"] = "5"
    await send_response(send, status, orjson.dumps(error_body(code, message)), headers=headers)


async def _send_refusal(send: Callable, refusal: tuple[int, dict, dict[str, str]]) -> None:
    """Our own 429: the error envelope and X-Untrace-Error, so a client tells it from the provider's."""
    status, body, headers = refusal
    await send_response(
        send, status, orjson.dumps(body), headers={**headers, "x-untrace-error": "rate_limited"}
    )


def _with_headers(send: Callable, extra: dict[str, str]) -> Callable:
    """`send` that puts `extra` (the key's X-RateLimit-*) on the answer, in place of any
    header of the same name from the provider."""
    raw = [(name.lower().encode(), value.encode()) for name, value in extra.items()]
    names = {name for name, _ in raw}

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            kept = [(name, value) for name, value in message["headers"] if name.lower() not in names]
            message = {**message, "headers": kept + raw}
        await send(message)

    return sending


class _ClientWatch:
    """Until `stop()`, a client that disconnects cancels the request's task, and with it the
    upstream call it is awaiting (aiohttp then closes that connection, so the provider stops
    generating). One task per call; the streamed phase has its own watcher."""

    def __init__(self, receive: Callable) -> None:
        self.left = False
        self._request = asyncio.current_task()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Callable) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.left = True
        self._request.cancel()

    def stop(self) -> None:
        self._watcher.cancel()

    def absorb(self) -> None:
        """The cancellation was ours: the request's task carries on (to trace the call)."""
        self._request.uncancel()


async def _relay_stream(
    response: aiohttp.ClientResponse, receive: Callable, send: Callable, call: ProxiedCall | None
) -> tuple[str, str] | None:
    """Forward the body chunk by chunk; the failure (type, message) that cut it short, if any."""
    state = {"finished": False, "gone": False}

    async def watch_client() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not state["finished"]:
                    state["gone"] = True
                    response.close()  # ends the upstream request, and the loop below
                return

    watcher = asyncio.ensure_future(watch_client())
    limit = settings.UNTRACE_PROXY_CAPTURE_MAX_BYTES
    kept = 0
    failure: tuple[str, str] | None = None
    try:
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if call is not None:
                kept += len(chunk)
                if kept <= limit:
                    call.chunks.append((time.time() * 1000, chunk))
                else:
                    call.truncated = True
    except (aiohttp.ClientError, TimeoutError) as exc:
        if not state["gone"]:
            failure = ("upstream_interrupted", f"the provider's answer stopped: {exc.__class__.__name__}")
    finally:
        state["finished"] = True
        watcher.cancel()
        response.release()
    if state["gone"]:
        return ("client_disconnected", "the client disconnected before the answer was complete")
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return failure


async def _proxy(scope: Scope, receive: Callable, send: Callable) -> None:
    started_ms = time.time() * 1000
    provider, _, rest = scope["path"][len(PREFIX) :].partition("/")
    if provider not in upstream.PROVIDERS or not rest:
        await _send_error(send, 404, "not_found", f"No proxy route for {scope['path']}.")
        PROXY_REQUESTS.labels("none", "404").inc()
        return
    headers = lowercase_headers(scope)
    raw_key = headers.get("x-untrace-key")
    ip = client_ip(scope, headers)
    try:
        principal = await _authenticate(raw_key, ip)
    except KeyAuthError as exc:
        if exc.status == 401 and raw_key:
            decision = await auth_failure_take_async(ip)
            if decision is not None and not decision.allowed:
                await _send_refusal(send, ip_refusal(decision, AUTH_FAILURES))
                PROXY_REQUESTS.labels(provider, "429").inc()
                return
        await _send_error(send, exc.status, exc.code, exc.message)
        PROXY_REQUESTS.labels(provider, str(exc.status)).inc()
        return
    except Exception:  # noqa: BLE001 - the key store is unreachable
        await _send_error(send, 503, "unavailable", "The API key could not be checked; retry shortly.")
        PROXY_REQUESTS.labels(provider, "503").inc()
        return

    decision = await key_take_async(principal)
    if decision is not None:
        if not decision.allowed:
            await _send_refusal(send, key_refusal(decision))
            PROXY_REQUESTS.labels(provider, "429").inc()
            return
        send = _with_headers(send, decision.headers())

    blocked = budget_block(principal.project_id, principal.key_id)
    if blocked is not None:  # a spent hard-stop budget: refused here, never sent upstream
        refusal = {"retry-after": str(blocked.retry_after()), "x-untrace-error": "budget_exceeded"}
        body = orjson.dumps(error_body("budget_exceeded", blocked.message(), blocked.details()))
        await send_response(send, 429, body, headers=refusal)
        PROXY_REQUESTS.labels(provider, "429").inc()
        BUDGET_REFUSALS.inc()
        return

    try:
        body = await read_body(receive, settings.UNTRACE_PROXY_MAX_BODY_BYTES)
    except ClientGone:
        return
    if body is None:
        limit = settings.UNTRACE_PROXY_MAX_BODY_BYTES
        await _send_error(send, 413, "payload_too_large", f"the request body is larger than {limit} bytes")
        PROXY_REQUESTS.labels(provider, "413").inc()
        return

    meta = call_metadata(headers)
    path = rest[3:] if rest.startswith("v1/") else rest
    method = scope["method"]
    call = None
    if settings.UNTRACE_PROXY_CAPTURE:
        request_type = headers.get("content-type", "")
        call = ProxiedCall(
            project_id=principal.project_id,
            organization_id=principal.organization_id,
            key_id=principal.key_id,
            provider=provider,
            method=method,
            path=path,
            meta=meta,
            start_ms=started_ms,
            request_body=body if "json" in request_type else b"",
            request_content_type=request_type,
        )
    target = cached_proxy_target(principal.project_id)
    if target is None:
        try:
            loop = asyncio.get_running_loop()
            target = await loop.run_in_executor(_auth_pool, _target_in_thread, principal.project_id)
        except Exception:  # noqa: BLE001 - the settings store is unreachable: use the defaults
            target = NO_OVERRIDES
    status = await _forward(
        scope, receive, send, provider=provider, path=path, body=body, meta=meta, call=call, target=target
    )
    PROXY_REQUESTS.labels(provider, str(status)).inc()
    if call is not None:
        call.end_ms = time.time() * 1000
        trace_writer().submit(call)


async def _open_upstream(
    scope: Scope, *, provider: str, path: str, headers: list, body: bytes, target: ProxyTarget
) -> tuple[aiohttp.ClientResponse | None, upstream.UpstreamError | None]:
    """The first upstream's answer, trying the fallbacks in order (an open circuit is skipped,
    a 5xx or a connection failure moves on); or None and the last failure."""
    bases = target.bases(provider, upstream.base_url(provider), upstream.fallback_urls(provider))
    trusted = upstream.deployment_bases(provider) if target is not NO_OVERRIDES else None
    response = None
    failure: upstream.UpstreamError | None = None
    for index, base in enumerate(bases):
        last = index == len(bases) - 1
        if not last and not breaker.available(base):
            continue  # its circuit is open: the next upstream takes the call
        url = upstream.upstream_url(
            provider=provider, path=path, query_string=scope.get("query_string", b""), base=base
        )
        try:
            response = await upstream.open_response(
                provider=provider,
                method=scope["method"],
                url=url,
                headers=headers,
                body=body,
                policy=upstream.attempts(),
                guarded=trusted is not None and base not in trusted,
            )
        except upstream.UpstreamNotAllowed as exc:  # nothing was sent: not the upstream's failure
            failure = exc
            continue
        except upstream.UpstreamError as exc:
            breaker.failed(base)
            failure = exc
            continue
        if response.status >= 500:
            breaker.failed(base)
            if not last:
                response.release()
                response = None
                continue
        else:
            breaker.succeeded(base)
        if index > 0:
            PROXY_FALLBACKS.labels(provider).inc()
        break
    return response, failure


def _left(call: ProxiedCall | None) -> int:
    if call is not None:
        call.status = 499
        call.error = ("client_disconnected", "the client disconnected before the provider answered")
    return 499


async def _forward(
    scope: Scope,
    receive: Callable,
    send: Callable,
    *,
    provider: str,
    path: str,
    body: bytes,
    meta: Any,
    call: ProxiedCall | None,
    target: ProxyTarget,
) -> int:
    """Send the call upstream and relay the answer; the status the client got."""
    headers = upstream_headers(scope["headers"])
    stored_key = target.keys.get(provider)
    if stored_key:
        headers = with_provider_key(headers, provider, stored_key)
    watch = _ClientWatch(receive)
    try:
        return await _answer(
            scope,
            receive,
            send,
            watch,
            provider=provider,
            path=path,
            headers=headers,
            body=body,
            meta=meta,
            call=call,
            target=target,
        )
    except asyncio.CancelledError:
        if not watch.left:
            raise
        watch.absorb()
        return _left(call)
    finally:
        watch.stop()


async def _answer(
    scope: Scope,
    receive: Callable,
    send: Callable,
    watch: _ClientWatch,
    *,
    provider: str,
    path: str,
    headers: list,
    body: bytes,
    meta: Any,
    call: ProxiedCall | None,
    target: ProxyTarget,
) -> int:
    """The upstream's answer relayed to the client, or the error that stands for it."""
    response, failure = await _open_upstream(
        scope, provider=provider, path=path, headers=headers, body=body, target=target
    )
    if response is None:
        if isinstance(failure, upstream.UpstreamNotAllowed):
            if call is not None:
                call.status, call.error = 502, ("upstream_not_allowed", str(failure))
            await _send_error(send, 502, "upstream_not_allowed", str(failure), meta.trace_id)
            return 502
        if isinstance(failure, upstream.UpstreamTimeout):
            if call is not None:
                call.status, call.error = 504, ("upstream_timeout", str(failure))
            await _send_error(send, 504, "upstream_timeout", str(failure), meta.trace_id)
            return 504
        message = str(failure) if failure else f"no upstream for {provider}"
        if call is not None:
            call.status, call.error = 502, ("upstream_unavailable", message)
        await _send_error(send, 502, "upstream_unavailable", message, meta.trace_id)
        return 502

    status = response.status
    content_type = response.headers.get("content-type", "")
    if call is not None:
        call.status = status
        call.response_content_type = content_type
        call.response_encoding = response.headers.get("content-encoding", "")
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": client_headers(response.raw_headers, trace_id=meta.trace_id),
    }
    length = response.content_length
    if "text/event-stream" not in content_type and length is not None and length <= _STREAM_ABOVE_BYTES:
        try:
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"The provider's answer stopped: {exc.__class__.__name__}."
            if call is not None:
                call.status, call.error = 502, ("upstream_interrupted", message)
            await _send_error(send, 502, "upstream_interrupted", message, meta.trace_id)
            return 502
        finally:
            response.release()
        await send(start)
        await send({"type": "http.response.body", "body": data})
        if call is not None and len(data) <= settings.UNTRACE_PROXY_CAPTURE_MAX_BYTES:
            call.response_body = data
        elif call is not None:
            call.truncated = True
        return status

    watch.stop()  # from here the stream's own watcher closes the upstream on a disconnect
    await send(start)
    if call is not None:
        call.chunks = []
    failure = await _relay_stream(response, receive, send, call)
    if call is not None and failure is not None:
        call.error = failure
    return status


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Everything loaded so far lives as long as the process: keep it out of the cyclic
            # collector's full passes, which otherwise stall requests for several milliseconds.
            gc.collect()
            gc.freeze()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await upstream.close_sessions()
            await asyncio.to_thread(flush_traces, 10.0)
            await send({"type": "lifespan.shutdown.complete"})
            return


def with_proxy(app: ASGIApp) -> ASGIApp:
    async def proxy_app(scope: Scope, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"].startswith(PREFIX):
            await _proxy(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        else:
            await app(scope, receive, send)

    return proxy_app
