"""A project's own proxy upstreams and stored provider keys, over the real proxy."""

import httpx
import pytest
from rest_framework.test import APIClient

from apps.proxy.models import ProxySettings
from apps.proxy.project_settings import proxy_settings_save
from tests.factories import ApiKeyFactory
from tests.fakes.llm_upstream import fake_upstream

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_calls_go_to_the_projects_upstream_with_its_stored_key(stack):
    key = ApiKeyFactory()
    with fake_upstream() as (own, own_state):
        proxy_settings_save(
            project_id=key.project_id, changes={"openai_upstream": own, "openai_key": "sk-stored"}
        )
        response = httpx.post(
            f"{stack.base}/v1/proxy/openai/v1/chat/completions",
            json=CHAT,
            headers={"X-Untrace-Key": key.secret},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert own_state.requests[-1]["headers"]["Authorization"] == "Bearer sk-stored"

        own_key = httpx.post(
            f"{stack.base}/v1/proxy/openai/v1/chat/completions",
            json=CHAT,
            headers={"X-Untrace-Key": key.secret, "Authorization": "Bearer sk-client"},
            timeout=10,
        )
        assert own_key.status_code == 200
        assert own_state.requests[-1]["headers"]["Authorization"] == "Bearer sk-client"  # the client's wins
    other = ApiKeyFactory()
    before = len(stack.state.requests)
    default = httpx.post(
        f"{stack.base}/v1/proxy/openai/v1/chat/completions",
        json=CHAT,
        headers={"X-Untrace-Key": other.secret, "Authorization": "Bearer sk-x"},
        timeout=10,
    )
    assert default.status_code == 200 and len(stack.state.requests) == before + 1  # the deployment default


def test_api_reads_and_writes_settings_keys_write_only(api, project, settings):
    assert api.get("/v1/proxy-settings").json()["openai_key_set"] is False
    saved = api.patch(
        "/v1/proxy-settings",
        {"anthropic_upstream": "https://gateway.example.com/anthropic/", "anthropic_key": "sk-ant-secret"},
        format="json",
    )
    assert saved.status_code == 200, saved.content
    body = saved.json()
    assert body["anthropic_upstream"] == "https://gateway.example.com/anthropic" and body["anthropic_key_set"]
    assert "sk-ant-secret" not in saved.content.decode()
    row = ProxySettings.objects.get(project=project)
    assert "sk-ant-secret" not in row.anthropic_key_encrypted and row.key("anthropic") == "sk-ant-secret"
    cleared = api.patch("/v1/proxy-settings", {"anthropic_key": None}, format="json").json()
    assert cleared["anthropic_key_set"] is False

    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False
    for body, field in (
        ({"openai_upstream": "ftp://x"}, "openai_upstream"),
        ({"openai_upstream": "http://10.0.0.1/v1"}, "openai_upstream"),
        ({"openai_upstream": 5}, "openai_upstream"),
        ({"openai_key": ["k"]}, "openai_key"),
        ({"azure_upstream": "https://x"}, "azure_upstream"),
    ):
        response = api.patch("/v1/proxy-settings", body, format="json")
        assert response.status_code == 400 and response.json()["error"]["details"]["field"] == field
    reader = ApiKeyFactory(project=project, scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_X_UNTRACE_KEY=reader.secret)
    assert client.get("/v1/proxy-settings").status_code == 200
    assert client.patch("/v1/proxy-settings", {}, format="json").status_code == 403


def test_a_dead_upstream_falls_back_in_order_and_its_circuit_opens(stack):
    key = ApiKeyFactory()
    proxy_settings_save(
        project_id=key.project_id,
        changes={"openai_upstream": "http://127.0.0.1:1", "openai_fallback_upstreams": [stack.fake]},
    )
    for _ in range(6):
        response = httpx.post(
            f"{stack.base}/v1/proxy/openai/v1/chat/completions",
            json=CHAT,
            headers={"X-Untrace-Key": key.secret, "Authorization": "Bearer sk-x"},
            timeout=20,
        )
        assert response.status_code == 200, response.text
    metrics = stack.metrics()
    assert 'untrace_proxy_fallbacks_total{provider="openai"} 6.0' in metrics
    assert 'untrace_proxy_circuit_transitions_total{transition="opened"} 1.0' in metrics


def test_every_upstream_down_is_a_502_with_a_clear_body(stack):
    key = ApiKeyFactory()
    proxy_settings_save(
        project_id=key.project_id,
        changes={
            "openai_upstream": "http://127.0.0.1:1",
            "openai_fallback_upstreams": ["http://127.0.0.1:2"],
        },
    )
    response = httpx.post(
        f"{stack.base}/v1/proxy/openai/v1/chat/completions",
        json=CHAT,
        headers={"X-Untrace-Key": key.secret, "Authorization": "Bearer sk-x"},
        timeout=20,
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"
