"""Failures around the proxy: the provider down or slow, PostgreSQL down (traces spill and replay),
Redis down (calls and traces are unaffected; the reconciler routes the stored batches later)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from django.db import connection

from apps.traces.models import Span
from tests.fakes.llm_upstream import fake_upstream
from tests.fakes.tcp_gate import TcpGate
from tests.integration.proxy.conftest import Stack, proxy_env
from tests.live import free_port, wait_for, web_server

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture(scope="module")
def gated(django_db_setup, tmp_path_factory):
    """A proxy whose PostgreSQL connection goes through a gate, whose Redis is down, and whose
    Anthropic upstream is down."""
    db = connection.settings_dict
    gate = TcpGate(db["HOST"], int(db["PORT"]))
    gate.open()
    var_dir = str(tmp_path_factory.mktemp("proxy-var"))
    try:
        with fake_upstream() as (fake, state):
            env = proxy_env(
                fake=fake,
                var_dir=var_dir,
                UNTRACE_ANTHROPIC_UPSTREAM=f"http://127.0.0.1:{free_port()}",
                UNTRACE_PROXY_RETRIES="1",
                UNTRACE_PROXY_READ_TIMEOUT="1",
                UNTRACE_KEY_CACHE_SECONDS="120",
            )
            env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{gate.port}/{db['NAME']}"
            env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # the broker is down throughout
            with web_server(env) as base:
                yield Stack(base=base, fake=fake, state=state, var_dir=var_dir), gate
    finally:
        gate.stop()


def _chat(base: str, key: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/proxy/openai/chat/completions",
        content=CHAT,
        headers={"Content-Type": "application/json", "X-Untrace-Key": key, **headers},
        timeout=15,
    )


def test_provider_down_is_502_with_an_error_span(gated, api_key):
    stack, _ = gated
    response = httpx.post(
        f"{stack.base}/v1/proxy/anthropic/v1/messages",
        content=b'{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}',
        headers={"Content-Type": "application/json", "X-Untrace-Key": api_key.secret, "x-api-key": "sk-ant"},
        timeout=15,
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert error["message"].startswith("could not reach anthropic")
    span = stack.wait_span(api_key.secret, response.headers["x-untrace-trace-id"])
    assert span["status"] == "error"
    assert span["error"]["type"] == "upstream_unavailable"
    assert span["provider"] == "anthropic"
    assert span["attributes"]["http.status_code"] == 502


def test_provider_too_slow_is_504(gated, api_key):
    stack, _ = gated
    response = _chat(stack.base, api_key.secret, **{"X-Fake-Hang-Ms": "3000"})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    span = stack.wait_span(api_key.secret, response.headers["x-untrace-trace-id"])
    assert span["error"]["type"] == "upstream_timeout"


def test_database_down_the_call_succeeds_and_the_trace_spills_then_replays(gated, api_key):
    stack, gate = gated
    first = _chat(stack.base, api_key.secret)  # also warms the key cache of the web process
    assert first.status_code == 200
    stack.wait_span(api_key.secret, first.headers["x-untrace-trace-id"])

    spill = Path(stack.var_dir) / "proxy-spill"
    gate.close()
    try:
        during = _chat(stack.base, api_key.secret)
        assert during.status_code == 200
        assert during.json()["choices"][0]["message"]["content"] == "Hello from the fake!"
        trace_id = during.headers["x-untrace-trace-id"]
        assert wait_for(lambda: any(spill.glob("spill-*.jsonl")), timeout=10)
        assert 'untrace_proxy_traces_total{outcome="spilled"} 1.0' in stack.metrics()
    finally:
        gate.open()

    assert wait_for(lambda: Span.objects.filter(trace_id=trace_id).exists(), timeout=15)
    assert wait_for(lambda: not any(spill.iterdir()), timeout=5)
    span = Span.objects.get(trace_id=trace_id)
    assert (span.project_id, span.model, span.total_tokens) == (api_key.project_id, "gpt-4o-mini", 17)
    assert 'untrace_proxy_traces_total{outcome="replayed"} 1.0' in stack.metrics()
    # Redis was down all along: the routing tasks were not taken, the batches wait for the reconciler.
    assert wait_for(lambda: 'untrace_enqueue_failures_total{task="route"}' in stack.metrics(), timeout=15)


def test_queued_traces_are_flushed_on_graceful_shutdown(django_db_setup, tmp_path, api_key):
    with fake_upstream() as (fake, _):
        env = proxy_env(fake=fake, var_dir=str(tmp_path), UNTRACE_PROXY_FLUSH_INTERVAL="60")
        with web_server(env) as base:
            response = _chat(base, api_key.secret)
            assert response.status_code == 200
            trace_id = response.headers["x-untrace-trace-id"]
            assert not wait_for(lambda: Span.objects.filter(trace_id=trace_id).exists(), timeout=1)
        # web_server sent SIGTERM: the ASGI lifespan shutdown wrote the collected trace.
    assert Span.objects.filter(trace_id=trace_id).exists()
