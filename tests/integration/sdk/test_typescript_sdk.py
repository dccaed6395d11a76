"""The TypeScript SDK (sdks/typescript) against a real Untrace and the fake OpenAI on loopback.

Untrace and the fake upstream run here; `npm test` builds the SDK and runs its
node:test suite, which sends nested spans and wrapped OpenAI calls, reads the
trace back through `GET /v1/traces/{trace_id}`, and checks Untrace being down.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.factories import ApiKeyFactory
from tests.fakes.llm_upstream import fake_upstream
from tests.live import ROOT, stack_env, web_server

pytestmark = pytest.mark.django_db(transaction=True)

SDK_DIR = Path(ROOT) / "sdks" / "typescript"
SDK_REDIS = "redis://127.0.0.1:6379/11"


def test_typescript_sdk_suite_against_a_real_untrace():
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the TypeScript SDK tests")
    modules = SDK_DIR / "node_modules"
    if not (modules / "typescript").is_dir() or not (modules / "openai").is_dir():
        pytest.fail(
            "sdks/typescript/node_modules is missing: `make test` installs it "
            "(npm ci --prefix sdks/typescript)"
        )

    key = ApiKeyFactory()
    with web_server(stack_env(redis_url=SDK_REDIS)) as base, fake_upstream() as (fake, _state):
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNTRACE_")}
        env.update(UNTRACE_BASE_URL=base, UNTRACE_API_KEY=key.secret, FAKE_OPENAI_URL=fake, NO_COLOR="1")
        result = subprocess.run(
            [npm, "test", "--prefix", str(SDK_DIR)],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"^# fail 0$", result.stdout, re.MULTILINE), output
    assert re.search(r"^# skipped 0$", result.stdout, re.MULTILINE), output
