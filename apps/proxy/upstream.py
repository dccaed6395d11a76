"""One pooled aiohttp session per provider, and the retrying request to it.

aiohttp rather than httpx: as the upstream client of a proxy, httpx's
AsyncClient measured about 2.5x slower here (encode/httpx#3215). Bodies pass
through as received (no automatic decompression), so the client gets exactly
the provider's bytes and headers.

A project's own upstreams and fallbacks go through a second pool per provider
whose connector checks every new connection's addresses (`apps.core.outbound`:
no loopback, private, link-local, ... address unless
UNTRACE_ALLOW_PRIVATE_DESTINATIONS); the deployment's upstreams, which the
operator set, keep the plain pool.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import aiohttp
from django.conf import settings
from multidict import CIMultiDict

from apps.core.http import retry_after_seconds
from apps.core.metrics import PROXY_UPSTREAM_RETRIES
from apps.core.outbound import AddressNotAllowed, GuardedTCPConnector

PROVIDERS = ("openai", "anthropic")
_sessions: dict[tuple[str, bool], tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]] = {}
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 4.0


class UpstreamError(Exception):
    """The call got no usable answer from this upstream."""


class UpstreamUnavailable(UpstreamError):
    """No answer from the provider: connection refused or reset, DNS failure."""


class UpstreamTimeout(UpstreamError):
    """The provider did not answer within the connect or read timeout."""


class UpstreamNotAllowed(UpstreamError):
    """A project's upstream resolves to an address the proxy may not reach; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Attempts:
    retries: int
    retry_statuses: frozenset[int]
    max_wait: float


def base_url(provider: str) -> str:
    if provider == "openai":
        return settings.UNTRACE_OPENAI_UPSTREAM.rstrip("/")
    return settings.UNTRACE_ANTHROPIC_UPSTREAM.rstrip("/")


def fallback_urls(provider: str) -> list[str]:
    if provider == "openai":
        return settings.UNTRACE_OPENAI_FALLBACK_UPSTREAMS
    return settings.UNTRACE_ANTHROPIC_FALLBACK_UPSTREAMS


def deployment_bases(provider: str) -> frozenset[str]:
    """The upstreams the operator configured (trusted: they use the unchecked pool)."""
    return frozenset((base_url(provider), *(url.rstrip("/") for url in fallback_urls(provider))))


def upstream_url(*, provider: str, path: str, query_string: bytes, base: str = "") -> str:
    """The provider URL of `path` (what follows /v1/proxy/{provider}/); a leading v1/ is optional.
    `base` is the project's own upstream, when it has one."""
    rest = path[3:] if path.startswith("v1/") else path
    url = f"{base or base_url(provider)}/v1/{rest}"
    return f"{url}?{query_string.decode('latin-1')}" if query_string else url


def session(provider: str, *, guarded: bool = False) -> aiohttp.ClientSession:
    """The provider's session on the running event loop (a new loop gets a new pool);
    `guarded`: the pool for the project's own upstreams, whose connections are checked."""
    loop = asyncio.get_running_loop()
    entry = _sessions.get((provider, guarded))
    if entry is not None and entry[0] is loop and not entry[1].closed:
        return entry[1]
    connector_class = GuardedTCPConnector if guarded else aiohttp.TCPConnector
    connector = connector_class(
        limit=settings.UNTRACE_PROXY_MAX_CONNECTIONS, ttl_dns_cache=300, keepalive_timeout=30
    )
    created = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(
            total=None,
            sock_connect=settings.UNTRACE_PROXY_CONNECT_TIMEOUT,
            sock_read=settings.UNTRACE_PROXY_READ_TIMEOUT,
        ),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    )
    _sessions[(provider, guarded)] = (loop, created)
    return created


async def close_sessions() -> None:
    loop = asyncio.get_running_loop()
    for name, (owner, open_session) in list(_sessions.items()):
        if owner is loop:
            await open_session.close()
            _sessions.pop(name, None)


def attempts() -> Attempts:
    return Attempts(
        retries=max(0, settings.UNTRACE_PROXY_RETRIES),
        retry_statuses=frozenset(settings.UNTRACE_PROXY_RETRY_STATUSES),
        max_wait=settings.UNTRACE_PROXY_RETRY_MAX_WAIT,
    )


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))  # noqa: S311 - jitter


async def open_response(
    *,
    provider: str,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    policy: Attempts,
    guarded: bool = False,
) -> aiohttp.ClientResponse:
    """The provider's response with its status and headers read (the body not yet), retrying
    connect errors and retryable statuses; raises UpstreamUnavailable, UpstreamTimeout or
    (`guarded`, a project's own upstream) UpstreamNotAllowed."""
    client = session(provider, guarded=guarded)
    request_headers = CIMultiDict(headers)
    attempt = 0
    while True:
        try:
            response = await client.request(
                method, url, data=body or None, headers=request_headers, allow_redirects=False
            )
        except AddressNotAllowed as exc:
            raise UpstreamNotAllowed(f"the upstream address is not allowed: {exc}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"{provider} did not answer in time") from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if attempt >= policy.retries:
                raise UpstreamUnavailable(f"could not reach {provider}: {exc}") from exc
            PROXY_UPSTREAM_RETRIES.labels(provider, "connect").inc()
            await asyncio.sleep(_backoff(attempt))
            attempt += 1
            continue
        except aiohttp.ClientError as exc:  # e.g. a malformed upstream URL or answer: no retry
            raise UpstreamUnavailable(f"could not call {provider}: {exc}") from exc
        if response.status not in policy.retry_statuses or attempt >= policy.retries:
            return response
        wait = retry_after_seconds(response.headers.get("retry-after"))
        if wait is None:
            wait = _backoff(attempt)
        if wait > policy.max_wait:
            return response
        response.release()
        PROXY_UPSTREAM_RETRIES.labels(provider, str(response.status)).inc()
        await asyncio.sleep(wait)
        attempt += 1
