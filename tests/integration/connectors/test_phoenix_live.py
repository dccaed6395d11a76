"""The Phoenix connector against a real Phoenix server on loopback.

`arize-phoenix` is installed into a virtualenv cached outside the checkout (`UNTRACE_PLATFORMS_CACHE`,
default `~/.cache/untrace-platforms`; its dependencies would clash with the project's), started on 127.0.0.1
with free ports and a throwaway working directory, sent spans through the connector, and read back through
Phoenix's REST API (`GET /v1/projects/{project}/spans`). `make test` runs it; the first run on a machine
installs Phoenix (minutes), later ones reuse the virtualenv. `-m "not live_platforms"` leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from apps.destinations.connectors import otlp_encoding as otlp
from apps.destinations.models import Destination
from tests.live import free_port, platforms_cache
from tests.unit.connectors.otel_samples import ROOT as ROOT_SPAN
from tests.unit.connectors.otel_samples import TRACE, llm_span, root_span

pytestmark = pytest.mark.live_platforms

VENV = platforms_cache() / "phoenix-venv"
PROJECT = "untrace-live"
PHOENIX = "arize-phoenix==20.26.1"  # the version this test was checked against


def _phoenix_bin() -> Path:
    phoenix = VENV / "bin" / "phoenix"
    if not phoenix.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", PHOENIX], check=True, timeout=1200)
    return phoenix


@pytest.fixture(scope="module")
def phoenix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": str(tmp_path_factory.mktemp("phoenix")),
    }
    log = tmp_path_factory.mktemp("phoenix-log") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(_phoenix_bin()), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"phoenix did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _spans(url: str) -> list[dict]:
    response = httpx.get(f"{url}/v1/projects/{PROJECT}/spans", params={"limit": 100}, timeout=10)
    return response.json().get("data", []) if response.status_code == 200 else []


def test_spans_round_trip(phoenix_url: str):
    connector = connector_for("phoenix")
    d = Destination(type="phoenix", config={"endpoint": phoenix_url, "project": PROJECT})
    outcome = send_all(connector, connector.build_requests(d, [root_span(), llm_span()], message_id="live"))
    assert outcome.ok, outcome
    deadline = time.monotonic() + 30
    while len(spans := _spans(phoenix_url)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)  # Phoenix inserts asynchronously
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"answer question", "chat gpt-4o"}
    root, llm = by_name["answer question"], by_name["chat gpt-4o"]
    assert root["context"]["trace_id"] == llm["context"]["trace_id"] == TRACE
    assert root["context"]["span_id"] == ROOT_SPAN
    assert llm["context"]["span_id"] == otlp.span_id("span-llm-1").hex()
    assert llm["parent_id"] == ROOT_SPAN and not root.get("parent_id")
    assert llm["span_kind"] == "LLM" and root["span_kind"] == "CHAIN"
    attrs = llm["attributes"]
    flat = attrs if "llm.model_name" in attrs else _flatten(attrs)
    assert flat["llm.model_name"] == "gpt-4o"
    assert flat["llm.token_count.prompt"] == 12 and flat["llm.token_count.completion"] == 3
    assert llm["status_code"] == "OK"


def _flatten(node: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
