"""Which limit a key runs under, how limits are written in settings, and whose address counts."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.core.client_ip import client_address
from apps.core.ratelimit import Decision, Limit, describe, ip_bucket, parse_limit
from apps.keys.ratelimit import key_limit


@pytest.mark.parametrize(
    ("key_rate", "key_burst", "plan_rate", "plan_burst", "expected"),
    [
        (None, None, 50, 100, Limit(50.0, 100)),  # the plan's
        (2, 3, 50, 100, Limit(2.0, 3)),  # the key's own, lower
        (2, None, 50, 100, Limit(2.0, 100)),  # one value of its own, the other the plan's
        (1000, 5000, 50, 100, Limit(50.0, 100)),  # never above the plan
        (None, None, None, None, None),  # unlimited plan, no limit of its own
        (5, None, None, None, Limit(5.0, 10)),  # unlimited plan: the burst is twice the rate
        (None, 7, None, None, Limit(7.0, 7)),  # a burst alone refills a burst a second
        (None, None, 20, None, Limit(20.0, 40)),  # a plan with a rate and no burst
    ],
)
def test_key_limit(key_rate, key_burst, plan_rate, plan_burst, expected):
    got = key_limit(key_rate=key_rate, key_burst=key_burst, plan_rate=plan_rate, plan_burst=plan_burst)
    assert got == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200/s", Limit(200.0, 200)),
        ("30/m", Limit(0.5, 30)),
        ("3600/h", Limit(1.0, 3600)),
        (" 10/M ", Limit(10 / 60, 10)),
        ("off", None),
        ("", None),
    ],
)
def test_parse_limit(text, expected):
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["10", "10/d", "ten/m", "0/s", "-5/m", "1/"])
def test_parse_limit_refuses_what_it_cannot_read(text):
    with pytest.raises(ImproperlyConfigured):
        parse_limit(text, setting="UNTRACE_RATE_LIMIT_WEBHOOK_PER_IP")


@pytest.mark.parametrize(
    ("limit", "text"),
    [
        (Limit(50.0, 100), "50 requests per second with a burst of 100"),
        (Limit(1.0, 1), "1 request per second with a burst of 1"),
        (Limit(0.5, 30), "30 requests per minute"),
        (Limit(1 / 60, 1), "1 request per minute"),
        (Limit(10 / 3600, 10), "10 requests per hour"),
    ],
)
def test_describe(limit, text):
    assert describe(limit) == text


def test_headers_of_an_allowed_and_a_refused_decision():
    allowed = Decision(allowed=True, limit=Limit(2.0, 3), remaining=2, reset=1, retry_after=0)
    assert allowed.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Reset": "1",
    }
    refused = Decision(allowed=False, limit=Limit(2.0, 3), remaining=0, reset=2, retry_after=1)
    assert refused.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2",
        "Retry-After": "1",
    }


def test_a_limit_needs_a_rate_and_a_burst():
    with pytest.raises(ValueError):
        Limit(0.0, 10)
    with pytest.raises(ValueError):
        Limit(1.0, 0)


@pytest.mark.parametrize(
    ("trusted", "trust_any", "peer", "forwarded", "expected"),
    [
        ([], False, "198.51.100.9", "203.0.113.5", "198.51.100.9"),  # nobody trusted: the socket
        (["10.0.0.0/8"], False, "198.51.100.9", "203.0.113.5", "198.51.100.9"),  # peer not a proxy
        (["10.0.0.0/8"], False, "10.1.2.3", "203.0.113.5", "203.0.113.5"),  # a trusted proxy
        # The right-most address that is not a trusted proxy; what the client wrote is ignored.
        (["10.0.0.0/8"], False, "10.1.2.3", "1.2.3.4, 203.0.113.5, 10.9.9.9", "203.0.113.5"),
        (["10.0.0.1"], False, "10.0.0.1", "not-an-ip, 203.0.113.5", "203.0.113.5"),
        (["10.0.0.0/8"], False, "10.1.2.3", "10.4.4.4", "10.4.4.4"),  # only proxies: the first hop
        (["10.0.0.0/8"], False, "10.1.2.3", None, "10.1.2.3"),
        ([], True, "198.51.100.9", "203.0.113.5, 10.0.0.1", "203.0.113.5"),  # legacy: trust any peer
    ],
)
def test_client_address(settings, trusted, trust_any, peer, forwarded, expected):
    settings.UNTRACE_TRUSTED_PROXIES = trusted
    settings.UNTRACE_TRUST_X_FORWARDED_FOR = trust_any
    assert client_address(peer, forwarded) == expected


@pytest.mark.parametrize(
    ("ip", "bucket"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same /64: one bucket
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("not an address", "not an address"),
    ],
)
def test_ip_bucket(ip, bucket):
    assert ip_bucket(ip) == bucket
