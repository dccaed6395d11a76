"""The MLflow connector against a real MLflow tracking server on loopback.

`mlflow` is installed into a virtualenv cached outside the checkout (`UNTRACE_PLATFORMS_CACHE`, default
`~/.cache/untrace-platforms`; its dependencies would clash with the project's), started on 127.0.0.1 with a
free port, a throwaway SQLite backend store and artifact root, and telemetry off. An experiment is created
through the REST API, spans are sent through the connector to the OTLP endpoint, and the trace is read back
with MLflow's own client, run inside that virtualenv. `make test` runs it; the first run on a machine
installs MLflow (about a minute), later ones reuse the virtualenv. `-m "not live_platforms"` leaves it out.
"""

from __future__ import annotations

import json
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

VENV = platforms_cache() / "mlflow-venv"
MLFLOW = "mlflow==3.17.2"  # the version this test was checked against
# No usage telemetry, no outbound calls from the server or the client.
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

# Runs inside the MLflow virtualenv: the traces of one experiment, as MLflow's client returns them.
READ_TRACES = """
import json, sys
import mlflow
client = mlflow.MlflowClient(sys.argv[1])
traces = client.search_traces(locations=[sys.argv[2]], max_results=10)
out = []
for found in traces:
    trace = client.get_trace(found.info.trace_id)
    out.append({
        "trace_id": trace.info.trace_id,
        "experiment_id": trace.info.experiment_id,
        "state": getattr(trace.info.state, "value", str(trace.info.state)),
        "token_usage": trace.info.token_usage,
        "spans": [
            {
                "name": s.name,
                "span_id": s.span_id,
                "parent_id": s.parent_id,
                "trace_id": s.trace_id,
                "span_type": s.span_type,
                "status": getattr(s.status.status_code, "value", str(s.status.status_code)),
                "attributes": s.attributes,
            }
            for s in trace.data.spans
        ],
    })
print(json.dumps(out, default=str))
"""


def _python() -> Path:
    python = VENV / "bin" / "python"
    if not (VENV / "bin" / "mlflow").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", MLFLOW], check=True, timeout=1200)
    return python


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = _python()
    port = free_port()
    work = tmp_path_factory.mktemp("mlflow")
    log = tmp_path_factory.mktemp("mlflow-log") / "server.log"
    command = [
        str(python.parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{work / 'mlflow.db'}",
        "--default-artifact-root",
        str(work / "artifacts"),
        "--no-serve-artifacts",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=work, env={**os.environ, **QUIET}, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _create_experiment(url: str, name: str) -> str:
    response = httpx.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["experiment_id"]


def _traces(url: str, experiment_id: str) -> list[dict]:
    result = subprocess.run(
        [str(_python()), "-c", READ_TRACES, url, experiment_id],
        env={**os.environ, **QUIET},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_trace_round_trip(mlflow_url: str):
    experiment_id = _create_experiment(mlflow_url, "untrace-live")
    connector = connector_for("mlflow")
    d = Destination(type="mlflow", config={"tracking_uri": mlflow_url, "experiment_id": experiment_id})
    requests = connector.build_requests(d, [root_span(), llm_span()], message_id="msg_live")
    outcome = send_all(connector, requests)
    assert outcome.ok, outcome
    traces = _traces(mlflow_url, experiment_id)
    assert len(traces) == 1, traces
    trace = traces[0]
    assert trace["trace_id"] == f"tr-{TRACE}"  # MLflow's id for an OTLP trace: "tr-" + the hex trace id
    assert trace["experiment_id"] == experiment_id
    assert trace["state"] == "OK"
    # Trace-level usage, summed by MLflow over the spans' mlflow.chat.tokenUsage.
    assert trace["token_usage"] == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    by_name = {span["name"]: span for span in trace["spans"]}
    assert set(by_name) == {"answer question", "chat gpt-4o"}
    root, llm = by_name["answer question"], by_name["chat gpt-4o"]
    assert root["trace_id"] == llm["trace_id"] == trace["trace_id"]
    assert root["span_id"] == ROOT_SPAN and root["parent_id"] is None
    assert llm["span_id"] == otlp.span_id("span-llm-1").hex()
    assert llm["parent_id"] == ROOT_SPAN
    assert root["span_type"] == "CHAIN" and llm["span_type"] == "LLM"
    assert root["status"] == llm["status"] == "OK"
    assert root["attributes"]["mlflow.spanInputs"] == "what is up?"
    assert root["attributes"]["mlflow.spanOutputs"] == "not much"
    attrs = llm["attributes"]
    assert attrs["mlflow.llm.model"] == "gpt-4o"
    assert attrs["mlflow.llm.provider"] == "openai"
    assert attrs["mlflow.chat.tokenUsage"] == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    assert attrs["mlflow.spanInputs"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert attrs["mlflow.spanOutputs"] == [{"role": "assistant", "content": "hello"}]
