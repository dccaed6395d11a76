"""The guard on every outbound request to a URL a user configured (SSRF).

Destination URLs (`webhook`, every `api_url`, endpoint and host field) and a
project's proxy upstreams and fallbacks may name any host. Unless
UNTRACE_ALLOW_PRIVATE_DESTINATIONS, a host is refused when ANY address it
resolves to is not a public one: loopback, private (RFC 1918), link-local
(169.254.0.0/16 with the cloud metadata address, fe80::/10), carrier-grade NAT,
multicast, unspecified, reserved or special-purpose, IPv6 unique local, and the
IPv6 forms that embed such an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4,
NAT64). `localhost` and `*.localhost` are loopback by definition (RFC 6761).

Two places use the same policy:

- `check_url` when a URL is saved (API and dashboard), for a 400 that says why.
  A name that does not resolve then is accepted: the send-time check decides.
- the connection layer when sending: the host is resolved once per new
  connection, every address is checked, and the socket goes to one of those
  checked addresses (never to a second answer of the resolver), while the host
  name stays the request's for TLS SNI, certificate verification and `Host`.
  `GuardedHTTPTransport` does this for httpx (deliveries) through httpcore's
  network backend; `GuardedTCPConnector` for aiohttp (the proxy's pools)
  through the connector's host resolution, whose results are what it connects to.

With UNTRACE_ALLOW_PRIVATE_DESTINATIONS the guard does nothing (self-hosted
platforms on an internal network, tests). Redirects are never followed by the
clients that use it, so a public host cannot bounce a request inward.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpcore
import httpx
from aiohttp.abc import ResolveResult
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_HINT = "(set UNTRACE_ALLOW_PRIVATE_DESTINATIONS to allow)"

_CARRIER_GRADE_NAT = ipaddress.IPv4Network("100.64.0.0/10")
_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


class AddressNotAllowed(Exception):
    """A host that resolves to an address outbound requests may not reach."""

    def __init__(self, host: str, address: str, kind: str) -> None:
        self.host = host
        self.address = address
        self.kind = kind
        super().__init__(f"{host} {self.reason}")

    @property
    def reason(self) -> str:
        return f"resolves to {self.address}, {self.kind} {ALLOW_HINT}"


class InvalidURL(ValueError):
    """Not an http(s) URL with a host."""


def private_allowed() -> bool:
    return bool(settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS)


def _ipv4_kind(address: ipaddress.IPv4Address) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address"
    if any(address in network for network in _RFC1918):
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _embedded(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 form carries, with the form's name."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


def _ipv6_kind(address: ipaddress.IPv6Address) -> str | None:
    embedded = _embedded(address)
    if embedded is not None:
        form, inner = embedded
        inner_kind = _ipv4_kind(inner)
        if inner_kind is not None:
            return f"the {form} form of {inner}, {inner_kind}"
        if form == "IPv4-compatible":  # deprecated (RFC 4291): never a real destination
            return "a reserved address"
        return None
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _UNIQUE_LOCAL:
        return "a unique local address"
    if address.is_site_local:
        return "a site-local address"
    if address in _NAT64_LOCAL or address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def address_kind(address: str | IPAddress) -> str | None:
    """What makes `address` unreachable for outbound requests ("a loopback address"),
    or None for a public address."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(address, ipaddress.IPv4Address):
        return _ipv4_kind(address)
    return _ipv6_kind(address)


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


@functools.lru_cache(maxsize=4096)
def _judged(text: str) -> tuple[str, str | None]:
    """(the address as the resolver would print it, its kind or None when public); an
    address's kind never changes, so the same upstream's addresses are judged once."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone
    except ValueError:
        return text, "not an IP address"
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return socket.inet_ntop(family, address.packed), address_kind(address)


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    """Raise AddressNotAllowed for the first address of `host` that is not public."""
    for text in addresses:
        shown, kind = _judged(text)
        if kind is not None:
            raise AddressNotAllowed(host, shown, kind)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (once), in the resolver's order, each
    checked: raises AddressNotAllowed if any is not public, OSError if none."""
    if _is_localhost(host):
        raise AddressNotAllowed(host, "127.0.0.1", "a loopback address")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    check_addresses(host, addresses)
    return addresses


def check_url(url: str) -> None:
    """For saving a URL: http(s) with a host, and, unless private addresses are
    allowed, a host whose addresses are all public. A name that does not
    resolve now passes (the check when sending decides).
    Raises InvalidURL or AddressNotAllowed (its `reason` is the message)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise InvalidURL("must be an http:// or https:// URL with a host") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidURL("must be an http:// or https:// URL with a host")
    if private_allowed():
        return
    try:
        resolve(host, port or (443 if parts.scheme == "https" else 80))
    except OSError:
        return
    except ValueError as exc:  # a host name IDNA cannot encode (a label over 63 characters)
        raise InvalidURL("must be an http:// or https:// URL with a host") from exc


# httpx (sync): deliveries.


class GuardedNetworkBackend(httpcore.NetworkBackend):
    """httpcore's network layer with the check: `connect_tcp` resolves the host
    once and connects to a checked address; TLS still uses the host name."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if private_allowed():
            return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = resolve(host, port)
        except OSError as exc:  # resolution failed: a connection error like any other
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # noqa: S101 - getaddrinfo answers at least one address
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not an outbound destination")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedHTTPTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose connections go through
    `GuardedNetworkBackend` (no proxy, no unix socket: those would skip it)."""

    def __init__(
        self, *, verify: bool = True, limits: httpx.Limits | None = None, http2: bool = False
    ) -> None:
        limits = limits or httpx.Limits()
        super().__init__(verify=verify, limits=limits, http2=http2)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),  # SSL_CERT_FILE / SSL_CERT_DIR apply
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=GuardedNetworkBackend(),
        )


# aiohttp (async): the proxy's upstream pools.


class GuardedTCPConnector(aiohttp.TCPConnector):
    """aiohttp's connector with the check on the addresses it is about to connect
    to: the answer of its resolver (or DNS cache) for a name, the literal for an
    IP. The check runs for each new connection; pooled ones are reused as usual."""

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        if private_allowed():
            return await super()._resolve_host(host, port, traces=traces)
        if _is_localhost(host):
            raise AddressNotAllowed(host, "127.0.0.1", "a loopback address")
        results = await super()._resolve_host(host, port, traces=traces)
        check_addresses(host, (result["host"] for result in results))
        return results
