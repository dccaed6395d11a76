"""The outbound address policy and the save-time URL check (no connection is made)."""

from __future__ import annotations

import socket

import pytest

from apps.core import outbound
from apps.core.outbound import AddressNotAllowed, InvalidURL, address_kind, check_url

HINT = "(set UNTRACE_ALLOW_PRIVATE_DESTINATIONS to allow)"
_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def _private_refused(settings):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Names in `answers` resolve to those addresses; numeric hosts resolve as usual.
    Returns the names looked up, in order."""
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            asked.append(host)
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port or 0, 0, 0) if ":" in a else (a, port or 0),
                )
                for a in answers[host]
            ]
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


BYPASSES = [
    ("http://127.0.0.1", "127.0.0.1", "a loopback address"),
    ("http://2130706433/", "127.0.0.1", "a loopback address"),
    ("http://0x7f000001/", "127.0.0.1", "a loopback address"),
    ("http://0177.0.0.1/", "127.0.0.1", "a loopback address"),
    ("http://127.1/", "127.0.0.1", "a loopback address"),
    ("http://[::1]/", "::1", "a loopback address"),
    (
        "http://[::ffff:127.0.0.1]/",
        "::ffff:127.0.0.1",
        "the IPv4-mapped form of 127.0.0.1, a loopback address",
    ),
    ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1", "the IPv4-mapped form of 127.0.0.1, a loopback address"),
    ("http://10.0.0.1", "10.0.0.1", "a private address"),
    ("https://172.16.3.4:8443/x", "172.16.3.4", "a private address"),
    ("http://192.168.1.1", "192.168.1.1", "a private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254", "a link-local address"),
    ("http://[fe80::1]/", "fe80::1", "a link-local address"),
    ("http://100.64.0.1", "100.64.0.1", "a carrier-grade NAT address"),
    ("http://[fd00::1]", "fd00::1", "a unique local address"),
    ("http://224.0.0.1", "224.0.0.1", "a multicast address"),
    ("http://[ff02::1]", "ff02::1", "a multicast address"),
    ("http://0.0.0.0", "0.0.0.0", "an unspecified address"),  # noqa: S104 - a refused address
    ("http://[::]/", "::", "an unspecified address"),
    ("http://240.0.0.1", "240.0.0.1", "a reserved address"),
    ("http://192.0.2.10", "192.0.2.10", "a reserved address"),
    (
        "http://[64:ff9b::a9fe:a9fe]/",
        "64:ff9b::a9fe:a9fe",
        "the NAT64 form of 169.254.169.254, a link-local address",
    ),
    ("http://[64:ff9b:1::1]/", "64:ff9b:1::1", "a reserved address"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1::", "the 6to4 form of 127.0.0.1, a loopback address"),
    ("http://[::a00:1]/", "::10.0.0.1", "the IPv4-compatible form of 10.0.0.1, a private address"),
    ("http://localhost", "127.0.0.1", "a loopback address"),
    ("http://foo.localhost:9000/hook", "127.0.0.1", "a loopback address"),
    ("http://LOCALHOST./", "127.0.0.1", "a loopback address"),
]


@pytest.mark.parametrize(("url", "address", "kind"), BYPASSES)
def test_every_non_public_form_is_refused_naming_the_address_and_its_kind(url, address, kind):
    with pytest.raises(AddressNotAllowed) as refused:
        check_url(url)
    assert refused.value.reason == f"resolves to {address}, {kind} {HINT}"


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch):
    asked = fake_dns(monkeypatch, {"internal.example.com": ["10.1.2.3"]})
    with pytest.raises(AddressNotAllowed) as refused:
        check_url("https://internal.example.com/hook")
    assert str(refused.value) == f"internal.example.com resolves to 10.1.2.3, a private address {HINT}"
    assert asked == ["internal.example.com"]


def test_one_private_address_among_public_ones_is_enough_to_refuse(monkeypatch):
    fake_dns(monkeypatch, {"mixed.example.com": ["8.8.8.8", "2606:4700::1111", "127.0.0.1"]})
    with pytest.raises(AddressNotAllowed, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        check_url("https://mixed.example.com/")


def test_a_name_resolving_to_public_addresses_is_accepted(monkeypatch):
    asked = fake_dns(monkeypatch, {"api.example.com": ["8.8.8.8", "2606:4700::1111"]})
    check_url("https://api.example.com/v1")
    assert asked == ["api.example.com"]


def test_a_name_that_does_not_resolve_is_left_to_the_check_when_sending(monkeypatch):
    def no_answer(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    check_url("https://not-yet-created.example.com/hook")


def test_nothing_is_resolved_when_private_addresses_are_allowed(settings, monkeypatch):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = True

    def forbidden(*args, **kwargs):
        raise AssertionError("resolved although private addresses are allowed")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/", "http://internal.example.com"):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com/hook",
        "http:///path",
        "http://[::1",
        "http://x:99999/",
        "file:///etc",
        "http://" + "a" * 64 + ".example.com/",
    ],
)
def test_urls_that_are_not_http_with_a_host_are_invalid(url):
    with pytest.raises(InvalidURL, match="must be an http:// or https:// URL with a host"):
        check_url(url)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_are_allowed(address):
    assert address_kind(address) is None


def test_resolve_answers_every_checked_address_once_in_order(monkeypatch):
    asked = fake_dns(monkeypatch, {"api.example.com": ["8.8.8.8", "8.8.4.4", "8.8.8.8"]})
    assert outbound.resolve("api.example.com", 443) == ["8.8.8.8", "8.8.4.4"]
    assert asked == ["api.example.com"]
