from __future__ import annotations

import ipaddress
import socket

import pytest
from rest_framework.test import APIClient

from apps.keys import cache as key_cache
from tests.factories import ApiKeyFactory, MembershipFactory, ProjectFactory

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address) -> None:
    """Tests reach only this machine: no real platform or provider is ever called."""
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise ConnectionRefusedError(f"tests may not connect to {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_outbound_network():
    socket.socket.connect = _loopback_only
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True, scope="session")
def _empty_test_broker():
    """Tasks enqueued by tests land in the test Redis database; no worker eats them."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    key_cache.clear()
    yield
    key_cache.clear()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Every test starts with full rate-limit buckets (its requests all come from one
    address) and an empty Django cache (allauth's login and signup limits)."""
    import redis
    from django.core.cache import cache

    from apps.core import ratelimit
    from apps.core.redis_cache import redis_client

    cache.clear()
    ratelimit.reset_state()
    try:
        client = redis_client()
        stale = list(client.scan_iter(match=f"{ratelimit.KEY_PREFIX}*", count=1000))
        if stale:
            client.delete(*stale)
    except redis.RedisError:
        pass
    yield


@pytest.fixture
def project(db):
    return ProjectFactory()


@pytest.fixture
def api_key(project):
    """A key with every scope on `project`; `.secret` holds the usable key."""
    return ApiKeyFactory(project=project)


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_UNTRACE_KEY=api_key.secret)
    return client


@pytest.fixture
def owner(project):
    return MembershipFactory(organization=project.organization, role="owner").user
