"""Sending a connector's requests with one pooled HTTP client per worker process."""

from __future__ import annotations

import os
import threading

import httpx
from django.conf import settings

from apps.core.outbound import AddressNotAllowed, GuardedHTTPTransport
from apps.destinations.connectors.base import Connector, HttpRequest, Outcome

_client: httpx.Client | None = None
_client_pid = 0
_lock = threading.Lock()


def http_client() -> httpx.Client:
    """The process's client (made after a fork, never shared across one); it
    keeps a connection pool per destination host. Its transport checks each new
    connection's addresses (`apps.core.outbound`); redirects are not followed."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        with _lock:
            if _client is None or _client_pid != os.getpid():
                _client = httpx.Client(
                    transport=GuardedHTTPTransport(
                        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
                    ),
                    timeout=httpx.Timeout(settings.UNTRACE_DELIVERY_TIMEOUT, connect=10.0),
                    follow_redirects=False,
                )
                _client_pid = os.getpid()
    return _client


def send_one(connector: Connector, request: HttpRequest) -> Outcome:
    try:
        response = http_client().request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            timeout=httpx.Timeout(settings.UNTRACE_DELIVERY_TIMEOUT, connect=10.0),
        )
    except AddressNotAllowed as exc:  # a permanent refusal: retrying reaches the same address
        return Outcome(ok=False, retryable=False, message=str(exc))
    except httpx.TimeoutException as exc:
        return Outcome(ok=False, retryable=True, message=f"timed out: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return Outcome(ok=False, retryable=True, message=f"{type(exc).__name__}: {exc}"[:500])
    return connector.classify(response)


def send_all(connector: Connector, requests: list[HttpRequest]) -> Outcome:
    """Send in order; the first failure is the outcome (what went before may be
    sent again on retry, with the same ids)."""
    last = Outcome(ok=True)
    item_errors = []
    for request in requests:
        last = send_one(connector, request)
        if not last.ok:
            return last
        item_errors.extend(last.item_errors)
    return Outcome(ok=True, status=last.status, body=last.body, item_errors=item_errors)
