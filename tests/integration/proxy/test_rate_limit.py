"""The proxy's per-key rate limit, over a real uvicorn process and Redis: its own 429 is
the Untrace error envelope with X-Untrace-Error, unlike a provider's 429 which passes through."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


def _chat(stack, key: str, model: str = "gpt-4o-mini") -> httpx.Response:
    return httpx.post(
        f"{stack.base}/v1/proxy/openai/v1/chat/completions",
        json={**CHAT, "model": model},
        headers={"X-Untrace-Key": key, "Authorization": "Bearer sk-test-provider"},
        timeout=10,
    )


def test_proxy_answers_its_own_429_past_the_keys_limit(stack, project):
    # One request a second with a burst of two: five calls in a row cannot all pass.
    key = ApiKeyFactory(project=project, rate_limit_per_second=1, rate_limit_burst=2)
    responses = [_chat(stack, key.secret) for _ in range(5)]
    passed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert passed and refused and len(passed) + len(refused) == 5

    first = responses[0]
    assert first.status_code == 200
    assert first.json()["choices"][0]["message"]["content"] == "Hello from the fake!"
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert first.headers["x-ratelimit-reset"] == "1"
    assert "x-untrace-error" not in first.headers

    ours = refused[0]
    assert ours.json() == {
        "error": {
            "code": "rate_limited",
            "message": "This key is limited to 1 request per second with a burst of 2; retry in 1 s.",
            "details": {"limit": "key", "rate_per_second": 1, "burst": 2, "retry_after": 1},
        }
    }
    assert ours.headers["x-untrace-error"] == "rate_limited"
    assert ours.headers["retry-after"] == "1"
    assert ours.headers["x-ratelimit-limit"] == "2"
    assert ours.headers["x-ratelimit-remaining"] == "0"


def test_a_providers_429_passes_through_without_our_marker(stack, project):
    key = ApiKeyFactory(project=project, rate_limit_per_second=100, rate_limit_burst=100)
    response = _chat(stack, key.secret, model="error-429")
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_exceeded"  # the provider's own body
    assert response.headers["retry-after"] == "30"
    assert "x-untrace-error" not in response.headers
    assert response.headers["x-ratelimit-limit"] == "100"  # ours, on every answer to the key
