import time

import pytest

from apps.proxy import breaker
from apps.proxy.project_settings import ProxyTarget


@pytest.fixture(autouse=True)
def _fresh(settings):
    settings.UNTRACE_PROXY_CIRCUIT_FAILURES = 3
    settings.UNTRACE_PROXY_CIRCUIT_RESET_SECONDS = 0.05
    breaker.reset()
    yield
    breaker.reset()


def test_opens_after_consecutive_failures_then_lets_one_trial_through():
    base = "http://a"
    for _ in range(2):
        breaker.failed(base)
    assert breaker.available(base) and breaker.state_of(base) == "closed"
    breaker.failed(base)
    assert breaker.state_of(base) == "open" and not breaker.available(base)
    time.sleep(0.06)
    assert breaker.available(base)  # the trial
    assert breaker.state_of(base) == "half-open" and not breaker.available(base)  # only one
    breaker.failed(base)  # the trial failed: open again
    assert breaker.state_of(base) == "open" and not breaker.available(base)
    time.sleep(0.06)
    assert breaker.available(base)
    breaker.succeeded(base)
    assert breaker.state_of(base) == "closed" and breaker.available(base)


def test_a_success_resets_the_count():
    base = "http://b"
    breaker.failed(base)
    breaker.failed(base)
    breaker.succeeded(base)
    breaker.failed(base)
    breaker.failed(base)
    assert breaker.state_of(base) == "closed"


def test_upstream_order_project_then_fallbacks():
    target = ProxyTarget({"openai": "http://own"}, {}, {"openai": ("http://fb1", "http://own")})
    assert target.bases("openai", "http://default", ["http://dfb"]) == ["http://own", "http://fb1"]
    assert ProxyTarget({}, {}).bases("openai", "http://default", ["http://dfb/"]) == [
        "http://default",
        "http://dfb",
    ]
