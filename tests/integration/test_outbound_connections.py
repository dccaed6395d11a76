"""The outbound guard at connection time: httpx (deliveries) and aiohttp (the proxy's pools).

Tests reach only loopback, so "public" addresses come from a fake resolver and
every connect is recorded: a refused host must never be connected to, and a
checked one must be the address the socket goes to.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import httpcore
import httpx
import pytest
import trustme

from apps.core.outbound import (
    AddressNotAllowed,
    GuardedHTTPTransport,
    GuardedNetworkBackend,
    GuardedTCPConnector,
)
from apps.delivery import sender
from apps.proxy import upstream
from tests.unit.test_outbound import BYPASSES, HINT, fake_dns


@dataclass
class Server:
    base: str
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    sni: list[str | None] = field(default_factory=list)


@contextmanager
def local_server(ssl_context: ssl.SSLContext | None = None) -> Iterator[Server]:
    """Answers 200, except /redirect: 302 to /inside on the same server."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = httpd.server_address[1]
    scheme = "https" if ssl_context else "http"
    server = Server(base=f"{scheme}://127.0.0.1:{port}", port=port)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            server.requests.append((self.path, self.headers.get("host", "")))
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("location", f"{server.base}/inside")
            else:
                self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _answer

    httpd.RequestHandlerClass = Handler
    if ssl_context is not None:
        ssl_context.sni_callback = lambda sock, name, ctx: server.sni.append(name)
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with local_server() as running:
        yield running


@pytest.fixture
def refused(settings):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False


@pytest.fixture
def connects(monkeypatch) -> list[tuple]:
    """Every address a socket is asked to connect to (then the loopback-only rule applies)."""
    seen: list[tuple] = []
    connect = socket.socket.connect

    def recording(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            seen.append(address[:2])
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return seen


def rebinding_dns(monkeypatch, name: str) -> list[str]:
    """`name` resolves to a public address the first time, to loopback afterwards."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "8.8.8.8" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def guarded_client() -> httpx.Client:
    return httpx.Client(transport=GuardedHTTPTransport(), follow_redirects=False, timeout=5)


# httpx: the delivery client's transport


@pytest.mark.parametrize(("url", "address", "kind"), BYPASSES)
def test_httpx_refuses_every_bypass_without_connecting(refused, connects, url, address, kind):
    with guarded_client() as client:
        try:
            client.get(url)
        except AddressNotAllowed as exc:
            assert exc.reason == f"resolves to {address}, {kind} {HINT}"
        except httpx.InvalidURL:  # httpx itself refuses some legacy numeric forms (0177.0.0.1)
            assert address == "127.0.0.1" and url.count(".") == 3
        else:
            pytest.fail(f"{url} was not refused")
    assert connects == []


def test_httpx_refuses_a_loopback_server_which_receives_nothing(refused, server, connects):
    with guarded_client() as client, pytest.raises(AddressNotAllowed, match="a loopback address"):
        client.post(f"{server.base}/hook", content=b"{}")
    assert server.requests == [] and connects == []


def test_httpx_refuses_a_name_resolving_to_a_private_address(refused, monkeypatch, server, connects):
    fake_dns(monkeypatch, {"hook.example.test": ["10.0.0.7"]})
    with guarded_client() as client, pytest.raises(AddressNotAllowed) as exc:
        client.post(f"http://hook.example.test:{server.port}/hook")
    assert str(exc.value) == f"hook.example.test resolves to 10.0.0.7, a private address {HINT}"
    assert connects == [] and server.requests == []


def test_httpx_connects_to_the_address_it_checked_not_to_a_rebound_one(
    refused, monkeypatch, server, connects
):
    asked = rebinding_dns(monkeypatch, "rebind.example.test")
    url = f"http://rebind.example.test:{server.port}/hook"
    with guarded_client() as client:
        with pytest.raises(httpx.ConnectError):  # 8.8.8.8 is out of the tests' reach
            client.post(url)
        assert asked == ["rebind.example.test"] and connects == [("8.8.8.8", server.port)]
        with pytest.raises(AddressNotAllowed, match=r"resolves to 127\.0\.0\.1, a loopback address"):
            client.post(url)  # the next connection resolves again, and is checked again
    assert asked == ["rebind.example.test"] * 2 and connects == [("8.8.8.8", server.port)]
    assert server.requests == []


class StandIn(httpcore.SyncBackend):
    """Dials 127.0.0.1 when asked for 8.8.8.8: the local server stands in for a public host."""

    def __init__(self) -> None:
        self.dialled: list[str] = []

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.dialled.append(host)
        target = "127.0.0.1" if host == "8.8.8.8" else host
        return super().connect_tcp(target, port, timeout, local_address, socket_options)


def test_httpx_pins_the_checked_address_and_keeps_the_name_for_tls_and_host(refused, monkeypatch):
    """The name resolves to a public address; the socket goes to that address (here routed to
    the local TLS server standing in for it) and TLS verifies the name's certificate."""
    fake_dns(monkeypatch, {"hook.example.test": ["8.8.8.8"]})
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hook.example.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    stand_in = StandIn()
    with local_server(server_context) as tls_server:
        backend = GuardedNetworkBackend(stand_in)
        with httpcore.ConnectionPool(ssl_context=client_context, network_backend=backend) as pool:
            response = pool.request("GET", f"https://hook.example.test:{tls_server.port}/hook")
        assert response.status == 200
        assert stand_in.dialled == ["8.8.8.8"]
        assert tls_server.sni == ["hook.example.test"]
        assert tls_server.requests == [("/hook", f"hook.example.test:{tls_server.port}")]


def test_httpx_resolves_once_per_new_connection_not_per_request(refused, monkeypatch, server):
    asked = fake_dns(monkeypatch, {"hook.example.test": ["8.8.8.8"]})
    stand_in = StandIn()
    with httpcore.ConnectionPool(network_backend=GuardedNetworkBackend(stand_in)) as pool:
        for _ in range(5):
            assert pool.request("POST", f"http://hook.example.test:{server.port}/hook").status == 200
    assert asked == ["hook.example.test"] and stand_in.dialled == ["8.8.8.8"]
    assert len(server.requests) == 5


def test_httpx_is_unchanged_when_private_addresses_are_allowed(settings, server, connects):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = True
    with guarded_client() as client:
        assert client.post(f"{server.base}/hook", content=b"{}").status_code == 200
        assert client.post(f"http://localhost:{server.port}/again").status_code == 200
    assert [path for path, _ in server.requests] == ["/hook", "/again"]


def test_the_delivery_client_does_not_follow_a_redirect(settings, server, monkeypatch):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = True
    monkeypatch.setattr(sender, "_client", None)
    response = sender.http_client().post(f"{server.base}/redirect", content=b"{}")
    assert response.status_code == 302 and response.headers["location"] == f"{server.base}/inside"
    assert [path for path, _ in server.requests] == ["/redirect"]
    sender.http_client().close()
    monkeypatch.setattr(sender, "_client", None)


# aiohttp: the proxy's pool for projects' own upstreams


async def _aiohttp_get(url: str) -> int:
    async with (
        aiohttp.ClientSession(connector=GuardedTCPConnector()) as session,
        session.get(url, allow_redirects=False) as response,
    ):
        return response.status


@pytest.mark.parametrize(("url", "address", "kind"), BYPASSES)
def test_aiohttp_refuses_every_bypass_without_connecting(refused, connects, url, address, kind):
    try:
        asyncio.run(_aiohttp_get(url))
    except AddressNotAllowed as exc:
        assert exc.reason == f"resolves to {address}, {kind} {HINT}"
    except aiohttp.InvalidUrlClientError:  # aiohttp itself refuses legacy numeric forms (127.1, ...)
        assert address == "127.0.0.1" and "localhost" not in url.lower()
    else:
        pytest.fail(f"{url} was not refused")
    assert connects == []


def test_aiohttp_refuses_a_name_resolving_to_a_private_address(refused, monkeypatch, server, connects):
    fake_dns(monkeypatch, {"llm.example.test": ["192.168.0.10"]})
    with pytest.raises(AddressNotAllowed, match=r"llm\.example\.test resolves to 192\.168\.0\.10, a private"):
        asyncio.run(_aiohttp_get(f"http://llm.example.test:{server.port}/v1/models"))
    assert connects == [] and server.requests == []


def test_aiohttp_connects_to_the_address_it_checked_not_to_a_rebound_one(
    refused, monkeypatch, server, connects
):
    asked = rebinding_dns(monkeypatch, "rebind.example.test")
    url = f"http://rebind.example.test:{server.port}/v1/models"

    async def twice() -> tuple[BaseException | None, BaseException | None]:
        outcomes = []
        async with aiohttp.ClientSession(connector=GuardedTCPConnector(use_dns_cache=False)) as session:
            for _ in range(2):
                try:
                    async with session.get(url):
                        outcomes.append(None)
                except Exception as exc:  # noqa: BLE001 - compared below
                    outcomes.append(exc)
        return outcomes[0], outcomes[1]

    first, second = asyncio.run(twice())
    assert isinstance(first, aiohttp.ClientConnectorError)  # 8.8.8.8 is out of the tests' reach
    assert isinstance(second, AddressNotAllowed) and "127.0.0.1, a loopback address" in str(second)
    assert asked == ["rebind.example.test"] * 2
    assert connects == [("8.8.8.8", server.port)] and server.requests == []


def test_aiohttp_is_unchanged_when_private_addresses_are_allowed(settings, server):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = True
    assert asyncio.run(_aiohttp_get(f"{server.base}/v1/models")) == 200
    assert asyncio.run(_aiohttp_get(f"http://localhost:{server.port}/v1/models")) == 200


def _open(url: str, *, guarded: bool) -> tuple[int | None, BaseException | None]:
    async def run() -> tuple[int | None, BaseException | None]:
        try:
            response = await upstream.open_response(
                provider="openai",
                method="POST",
                url=url,
                headers=[("content-type", "application/json")],
                body=b"{}",
                policy=upstream.Attempts(retries=2, retry_statuses=frozenset(), max_wait=0),
                guarded=guarded,
            )
            response.release()
            return response.status, None
        except upstream.UpstreamError as exc:
            return None, exc
        finally:
            await upstream.close_sessions()

    return asyncio.run(run())


def test_a_projects_upstream_on_loopback_is_refused_at_once_and_not_retried(refused, server, connects):
    status, failure = _open(f"{server.base}/v1/chat/completions", guarded=True)
    assert status is None and isinstance(failure, upstream.UpstreamNotAllowed)
    assert str(failure) == (
        f"the upstream address is not allowed: 127.0.0.1 resolves to 127.0.0.1, a loopback address {HINT}"
    )
    assert connects == [] and server.requests == []


def test_the_deployments_own_upstream_pool_is_not_checked(refused, server):
    assert _open(f"{server.base}/v1/chat/completions", guarded=False) == (200, None)


def test_the_proxy_does_not_follow_a_redirect(settings, server):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = True
    assert _open(f"{server.base}/redirect", guarded=True) == (302, None)
    assert [path for path, _ in server.requests] == ["/redirect"]
