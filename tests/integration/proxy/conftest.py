"""A real proxy (uvicorn subprocess on the test database) in front of the fake providers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import httpx
import openai
import pytest

from tests.fakes.llm_upstream import FakeState, fake_upstream
from tests.live import stack_env, wait_for, web_server

PROXY_REDIS = "redis://127.0.0.1:6379/12"


@dataclass
class Stack:
    base: str  # the proxy (the whole web app)
    fake: str  # the fake provider
    state: FakeState
    var_dir: str

    def openai(self, key: str, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base}/v1/proxy/openai",
            api_key="sk-test-provider",
            default_headers={"X-Untrace-Key": key, **headers},
            max_retries=0,
        )

    def openai_direct(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.fake}/v1", api_key="sk-test-provider", max_retries=0)

    def anthropic(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=f"{self.base}/v1/proxy/anthropic",
            api_key="sk-ant-test",
            default_headers={"X-Untrace-Key": key},
            max_retries=0,
        )

    def anthropic_direct(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.fake, api_key="sk-ant-test", max_retries=0)

    def spans(self, key: str, **params: str) -> list[dict]:
        response = httpx.get(
            f"{self.base}/v1/traces", params=params, headers={"X-Untrace-Key": key}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()["results"]

    def wait_span(self, key: str, trace_id: str) -> dict:
        found: list[dict] = []

        def stored() -> bool:
            found[:] = self.spans(key, trace_id=trace_id)
            return bool(found)

        assert wait_for(stored, timeout=10), f"no span for trace {trace_id}"
        assert len(found) == 1
        return found[0]

    def metrics(self) -> str:
        return httpx.get(f"{self.base}/metrics", timeout=10).text


def proxy_env(*, fake: str, var_dir: str, **extra: str) -> dict[str, str]:
    env = stack_env(redis_url=PROXY_REDIS)
    env.update(
        UNTRACE_OPENAI_UPSTREAM=fake,
        UNTRACE_ANTHROPIC_UPSTREAM=fake,
        UNTRACE_VAR_DIR=var_dir,
        UNTRACE_PROXY_RETRY_MAX_WAIT="1",
        UNTRACE_PROXY_REPLAY_INTERVAL="0.3",
        UNTRACE_ALLOW_PRIVATE_DESTINATIONS="true",  # projects' own upstreams are fakes on loopback
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory) -> Iterator[Stack]:
    var_dir = str(tmp_path_factory.mktemp("proxy-var"))
    with fake_upstream() as (fake, state), web_server(proxy_env(fake=fake, var_dir=var_dir)) as base:
        yield Stack(base=base, fake=fake, state=state, var_dir=var_dir)


@pytest.fixture(autouse=True)
def _traces_settled():
    """Tests wait for the traces they assert on; this covers any other trace still in the
    writer's window, so it is not written while the test database is being flushed."""
    yield
    time.sleep(0.2)


@pytest.fixture
def traceparent() -> tuple[str, str, str]:
    """(header value, trace id, parent span id) of a fresh W3C trace context."""
    trace_id, parent_id = os.urandom(16).hex(), os.urandom(8).hex()
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id
