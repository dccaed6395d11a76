"""Datadog LLM Observability span intake: requests and answers.

The body is checked against the span schema of Datadog's HTTP API reference
(llm_observability/instrumentation/api.md): dd-trace's own span types describe its
agentless intake, a different endpoint and shape, so they are not used here."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from apps.destinations.connectors import connector_for
from apps.destinations.connectors.datadog import DROPPED_IO, DatadogConnector
from tests.unit.connectors import obs_samples as samples

REQUIRED = {"name", "span_id", "trace_id", "parent_id", "start_ns", "duration", "meta"}
OPTIONAL = {"status", "metrics", "session_id", "tags", "apm_trace_id", "collection_errors"}
META = {"kind", "input", "output", "error", "metadata", "model_name", "model_provider"}
KINDS = {"agent", "workflow", "llm", "tool", "task", "embedding", "retrieval"}


def dest(**config: Any):
    return samples.destination(
        "datadog", {"site": "datadoghq.com", "ml_app": "support-bot", **config}, {"api_key": "dd-key"}
    )


def check_span(span: dict[str, Any]) -> None:
    assert REQUIRED <= set(span) <= REQUIRED | OPTIONAL
    for key in ("name", "span_id", "trace_id", "parent_id"):
        assert isinstance(span[key], str) and span[key]
    assert isinstance(span["start_ns"], int) and span["start_ns"] > 0
    assert isinstance(span["duration"], float) and span["duration"] >= 0
    assert span.get("status", "ok") in ("ok", "error")
    assert set(span["meta"]) <= META and span["meta"]["kind"] in KINDS
    for side in ("input", "output"):
        io = span["meta"].get(side, {})
        assert set(io) <= {"value", "messages", "documents", "prompt"}
        for message in io.get("messages", []):
            assert set(message) == {"role", "content"} and isinstance(message["content"], str)
    assert all(isinstance(v, int | float) for v in span.get("metrics", {}).values())
    assert all(isinstance(tag, str) and ":" in tag for tag in span.get("tags", []))


def body_of(request) -> dict[str, Any]:
    body = orjson.loads(request.body)
    assert body["data"]["type"] == "span"
    assert body["data"]["attributes"]["ml_app"] == "support-bot"
    for span in body["data"]["attributes"]["spans"]:
        check_span(span)
    return body


def spans_of(requests) -> list[dict[str, Any]]:
    return [span for request in requests for span in body_of(request)["data"]["attributes"]["spans"]]


def test_registered():
    assert isinstance(connector_for("datadog"), DatadogConnector)


def test_url_headers_and_site():
    connector = DatadogConnector()
    (request,) = connector.build_requests(dest(), samples.trace(), message_id="m1")
    assert request.method == "POST"
    assert request.url == "https://api.datadoghq.com/api/intake/llm-obs/v1/trace/spans"
    assert request.headers["dd-api-key"] == "dd-key"
    assert request.headers["content-type"] == "application/json"
    assert request.span_count == 3
    assert connector.endpoint(dest(site="datadoghq.eu")).startswith("https://api.datadoghq.eu/")
    proxied = connector.endpoint(dest(api_url="http://127.0.0.1:9/"))
    assert proxied == "http://127.0.0.1:9/api/intake/llm-obs/v1/trace/spans"


def test_llm_span_mapping():
    (request,) = DatadogConnector().build_requests(dest(), [samples.llm()], message_id="m1")
    (span,) = spans_of([request])
    assert span["span_id"] == "span-llm" and span["trace_id"] == samples.TRACE
    assert span["parent_id"] == "span-agent"
    assert span["name"] == "chat gpt-4o-mini"
    assert span["start_ns"] == 1772600767250000000
    assert span["duration"] == 1.5e9
    assert span["status"] == "ok"
    assert span["session_id"] == "conv-9"
    meta = span["meta"]
    assert meta["kind"] == "llm"
    assert meta["model_name"] == "gpt-4o-mini" and meta["model_provider"] == "openai"
    assert meta["input"]["messages"][1] == {"role": "user", "content": "Where is my parcel?"}
    assert meta["output"]["messages"] == [{"role": "assistant", "content": "Arriving Friday."}]
    assert meta["metadata"]["temperature"] == 0.3 and meta["metadata"]["max_tokens"] == 128
    assert meta["metadata"]["finish_reason"] == "stop"
    assert meta["metadata"]["untrace"]["rule"] == "prod"
    assert meta["metadata"]["attributes"] == {"gen_ai.system": "openai"}
    assert "tags" not in meta["metadata"]
    assert span["metrics"] == {
        "input_tokens": 21,
        "output_tokens": 4,
        "total_tokens": 25,
        "time_to_first_token": 0.32,
        "time_per_output_token": 0.025,
        "total_cost": 0.000123,
    }
    assert set(span["tags"]) == {
        "user_id:user-7",
        "session_id:conv-9",
        "env:prod",
        "version:2.1.0",
        "team:care",
        "tier:gold",
    }


def test_nested_trace_keeps_hierarchy_and_kinds():
    spans = {
        s["span_id"]: s
        for s in spans_of(DatadogConnector().build_requests(dest(), samples.trace(), message_id="m"))
    }
    assert spans["span-agent"]["parent_id"] == "undefined"
    assert spans["span-agent"]["meta"]["kind"] == "agent"
    assert spans["span-agent"]["meta"]["input"] == {
        "value": '[{"role":"user","content":"Where is my parcel?"}]'
    }
    assert spans["span-agent"]["meta"]["output"] == {"value": "Arriving Friday."}
    assert spans["span-llm"]["parent_id"] == spans["span-tool"]["parent_id"] == "span-agent"
    assert {s["trace_id"] for s in spans.values()} == {samples.TRACE}
    chain = spans_of(DatadogConnector().build_requests(dest(), [samples.agent(kind="chain")], message_id="m"))
    assert chain[0]["meta"]["kind"] == "workflow"


def test_error_span():
    (span,) = spans_of(DatadogConnector().build_requests(dest(), [samples.failing_tool()], message_id="m"))
    assert span["status"] == "error"
    assert span["meta"]["kind"] == "tool"
    assert span["meta"]["error"] == {
        "message": "carrier API timed out",
        "type": "TimeoutError",
        "stack": "Traceback ...",
    }
    assert span["meta"]["input"] == {"value": '{"parcel": "P-1"}'}
    assert span["duration"] == 4e8


def test_bare_span():
    (span,) = spans_of(DatadogConnector().build_requests(dest(), [samples.bare()], message_id="m"))
    assert span["span_id"] == "span-bare" and span["trace_id"] == "trace-bare"
    assert span["parent_id"] == "undefined"
    assert span["name"] == "span" and span["meta"] == {"kind": "task"} and span["status"] == "ok"
    assert span["duration"] == 0.0 and span["metrics"] == {} and span["tags"] == []


def test_same_span_same_body():
    first = DatadogConnector().build_requests(dest(), samples.trace(), message_id="m")
    again = DatadogConnector().build_requests(dest(), samples.trace(), message_id="m")
    assert first[0].body == again[0].body


def test_split_by_count_and_size(monkeypatch):
    spans = [samples.llm(id=f"s{i}") for i in range(7)]
    monkeypatch.setattr(DatadogConnector, "max_batch_spans", 3)
    requests = DatadogConnector().build_requests(dest(), spans, message_id="m")
    assert [r.span_count for r in requests] == [3, 3, 1]
    monkeypatch.setattr(DatadogConnector, "max_batch_spans", 1000)
    monkeypatch.setattr(DatadogConnector, "max_request_bytes", 4000)
    requests = DatadogConnector().build_requests(dest(), spans, message_id="m")
    assert len(requests) > 1 and all(len(r.body) <= 4000 for r in requests)
    assert [s["span_id"] for s in spans_of(requests)] == [f"s{i}" for i in range(7)]


def test_oversized_span_drops_io(monkeypatch):
    monkeypatch.setattr("apps.destinations.connectors.datadog.MAX_EVENT_BYTES", 2000)
    big = samples.llm(request={"messages": [{"role": "user", "content": "x" * 5000}]})
    (span,) = spans_of(DatadogConnector().build_requests(dest(), [big], message_id="m"))
    assert span["meta"]["input"] == {"value": DROPPED_IO}
    assert span["collection_errors"] == ["dropped_io"]


@pytest.mark.parametrize(
    ("status", "body", "headers", "ok", "retryable"),
    [
        (202, b"", {}, True, False),
        (400, b'{"errors": ["Invalid span: missing name"]}', {}, False, False),
        (403, b'{"errors": ["Forbidden"]}', {}, False, False),
        (413, b'{"errors": ["Payload too large"]}', {}, False, False),
        (429, b'{"errors": ["Too many requests"]}', {"x-ratelimit-reset": "7"}, False, True),
        (500, b'{"errors": ["Internal Server Error"]}', {}, False, True),
        (503, b"", {"retry-after": "3"}, False, True),
    ],
)
def test_classify(status, body, headers, ok, retryable):
    outcome = DatadogConnector().classify(httpx.Response(status, content=body, headers=headers))
    assert (outcome.ok, outcome.retryable, outcome.status) == (ok, retryable, status)
    if status == 429:
        assert outcome.retry_after == 7.0
        assert "Too many requests" in outcome.message
    if status == 503:
        assert outcome.retry_after == 3.0
