"""A project's own upstreams go through the outbound guard, over the real proxy with
UNTRACE_ALLOW_PRIVATE_DESTINATIONS off; the deployment's own upstream is the operator's
choice and is not checked."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from apps.proxy.project_settings import proxy_settings_save
from tests.factories import ApiKeyFactory
from tests.fakes.llm_upstream import fake_upstream
from tests.integration.proxy.conftest import Stack, proxy_env
from tests.live import web_server
from tests.unit.test_outbound import HINT

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def guarded(django_db_setup, tmp_path_factory) -> Iterator[Stack]:
    var_dir = str(tmp_path_factory.mktemp("proxy-guard-var"))
    env = proxy_env(
        fake="",
        var_dir=var_dir,
        UNTRACE_ALLOW_PRIVATE_DESTINATIONS="false",
        UNTRACE_PROXY_CIRCUIT_FAILURES="2",
    )
    with fake_upstream() as (fake, state):
        env.update(UNTRACE_OPENAI_UPSTREAM=fake, UNTRACE_ANTHROPIC_UPSTREAM=fake)
        with web_server(env) as base:
            yield Stack(base=base, fake=fake, state=state, var_dir=var_dir)


def chat(stack: Stack, key) -> httpx.Response:
    return httpx.post(
        f"{stack.base}/v1/proxy/openai/v1/chat/completions",
        json=CHAT,
        headers={"X-Untrace-Key": key.secret, "Authorization": "Bearer sk-x"},
        timeout=20,
    )


def opened_circuits(stack: Stack) -> float:
    found = re.search(
        r'^untrace_proxy_circuit_transitions_total\{transition="opened"\} (\S+)$', stack.metrics(), re.M
    )
    return float(found.group(1)) if found else 0.0


def test_a_projects_upstream_on_loopback_is_refused_with_502_and_receives_nothing(guarded):
    key = ApiKeyFactory()
    with fake_upstream() as (own, own_state):
        port = own.rsplit(":", 1)[1]
        proxy_settings_save(project_id=key.project_id, changes={"openai_upstream": own})
        response = chat(guarded, key)
        assert response.status_code == 502
        assert response.json() == {
            "error": {
                "code": "upstream_not_allowed",
                "message": "the upstream address is not allowed: "
                f"127.0.0.1 resolves to 127.0.0.1, a loopback address {HINT}",
                "details": None,
            }
        }
        assert response.headers["x-untrace-trace-id"]
        other = ApiKeyFactory()  # another project: the proxy caches a project's settings for a while
        proxy_settings_save(
            project_id=other.project_id, changes={"openai_upstream": f"http://localhost:{port}"}
        )
        assert "localhost resolves to 127.0.0.1" in chat(guarded, other).json()["error"]["message"]
        assert own_state.requests == []


def test_a_refused_upstream_falls_back_without_counting_as_an_upstream_failure(guarded):
    key = ApiKeyFactory()
    before = len(guarded.state.requests)
    opened = opened_circuits(guarded)
    proxy_settings_save(
        project_id=key.project_id,
        changes={"openai_upstream": "http://127.0.0.1:9", "openai_fallback_upstreams": [guarded.fake]},
    )
    for _ in range(4):  # twice the circuit's failure threshold
        response = chat(guarded, key)
        assert response.status_code == 200, response.text
    assert len(guarded.state.requests) == before + 4  # the deployment's upstream, as a fallback
    assert opened_circuits(guarded) == opened


def test_the_deployments_upstream_on_loopback_is_the_operators_choice(guarded):
    before = len(guarded.state.requests)
    assert chat(guarded, ApiKeyFactory()).status_code == 200
    assert len(guarded.state.requests) == before + 1
