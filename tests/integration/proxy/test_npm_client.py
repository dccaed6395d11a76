"""The official openai npm client through the proxy: what it sees equals calling the provider directly."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.live import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NODE_DIR = Path(__file__).resolve().parents[2] / "node"


def _run(*args: str) -> dict:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("node and tests/node/node_modules are needed: .ci/run runs `npm ci --prefix tests/node`")
    result = subprocess.run(
        ["node", str(NODE_DIR / "openai_client.mjs"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_npm_client_sees_the_same_answers_and_the_calls_are_traced(stack, api_key):
    session = f"npm-{uuid.uuid4().hex[:8]}"
    proxied = _run(f"{stack.base}/v1/proxy/openai", "sk-test-provider", api_key.secret, session)
    direct = _run(f"{stack.fake}/v1", "sk-test-provider")

    assert proxied == direct
    assert proxied["completion"]["choices"][0]["message"]["content"] == "Hello from the fake!"
    assert proxied["chunks"][-1]["usage"]["total_tokens"] > 0
    assert proxied["error"]["status"] == 400

    def traced() -> bool:
        return len(stack.spans(api_key.secret, session_id=session)) == 3

    assert wait_for(traced, timeout=10)
    spans = stack.spans(api_key.secret, session_id=session)
    assert sorted(span["status"] for span in spans) == ["error", "ok", "ok"]
    assert {span["model"] for span in spans if span["status"] == "ok"} == {"gpt-4o-mini"}
