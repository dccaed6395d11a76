"""LangWatch connector: bodies for POST /api/collector, checked with the `langwatch` SDK's
`CollectorRESTParams` type (pydantic validation of its TypedDicts)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from langwatch.domain import CollectorRESTParams
from pydantic import TypeAdapter

from apps.destinations.connectors import connector_for
from tests.unit.connectors.llm_samples import bare_span, destination, llm_span, tool_error_span, trace

connector = connector_for("langwatch")
COLLECTOR = TypeAdapter(CollectorRESTParams)


def build(spans, **config):
    return connector.build_requests(destination("langwatch", config), spans, message_id="m")


def validated(request):
    body = orjson.loads(request.body)
    # The SDK type declares these two as keys that may be null; the collector takes them as optional.
    COLLECTOR.validate_python({"expected_output": None, "evaluations": None, **body}, strict=False)
    assert {span["trace_id"] for span in body["spans"]} == {body["trace_id"]}
    for span in body["spans"]:
        for value in span["timestamps"].values():
            assert len(str(value)) == 13
    return body


def test_request_shape():
    [request] = build(trace())
    assert request.method == "POST"
    assert request.url == "https://app.langwatch.ai/api/collector"
    assert request.headers["x-auth-token"] == "key-123"
    assert request.headers["content-type"] == "application/json"
    assert request.span_count == 3


def test_nested_trace():
    [request] = build(trace())
    body = validated(request)
    assert body["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    spans = {s["name"]: s for s in body["spans"]}
    assert spans["support-agent"]["type"] == "agent" and spans["support-agent"]["parent_id"] is None
    assert (
        spans["chat gpt-4o"]["parent_id"] == "span-root" and spans["chat gpt-4o"]["span_id"] == "span-llm-1"
    )
    assert spans["lookup_order"]["type"] == "tool"
    assert body["metadata"] == {
        "environment": "prod",
        "version": "1.2.0",
        "user_id": "user-1",
        "thread_id": "sess-1",
        "untrace": {"sample_rate": 1.0, "sampled_by": "rule", "rule": "all"},
        "labels": ["team:support", "tier:gold"],
    }


def test_llm_span_fields():
    [request] = build([llm_span()])
    [span] = validated(request)["spans"]
    assert span["type"] == "llm"
    assert span["model"] == "openai/gpt-4o"
    assert span["input"]["type"] == "chat_messages"
    assert span["input"]["value"][1] == {"role": "user", "content": "Where is my order?"}
    assert span["output"] == {
        "type": "chat_messages",
        "value": [{"role": "assistant", "content": "It ships tomorrow."}],
    }
    assert span["timestamps"] == {
        "started_at": 1767323045123,
        "finished_at": 1767323046500,
        "first_token_at": 1767323045333,
    }
    assert span["metrics"] == {"prompt_tokens": 12, "completion_tokens": 5, "cost": 0.00042}
    assert span["params"] == {"temperature": 0.2, "max_tokens": 256, "user": "abc"}
    assert span["error"] is None


def test_error_span():
    [request] = build([tool_error_span()])
    [span] = validated(request)["spans"]
    assert span["error"] == {
        "message": "TimeoutError: orders API timed out",
        "stacktrace": ["line 1", "line 2"],
    }
    assert span["input"] == {"type": "text", "value": "order 42"}


def test_bare_span():
    [request] = build([bare_span()])
    body = validated(request)
    assert body["trace_id"] == "trace-bare"
    [span] = body["spans"]
    assert span["span_id"] == "span-bare" and span["type"] == "span" and span["parent_id"] is None
    assert set(span["timestamps"]) == {"started_at", "finished_at"}
    assert body["metadata"] == {}


def test_one_request_per_trace():
    spans = [*trace(), llm_span(id="other", trace_id="trace-2", parent_id=None)]
    requests = build(spans)
    assert [orjson.loads(r.body)["trace_id"] for r in requests] == [
        "0af7651916cd43dd8448eb211c80319c",
        "trace-2",
    ]
    assert [r.span_count for r in requests] == [3, 1]
    for request in requests:
        validated(request)


def test_split_over_span_limit():
    spans = [llm_span(id=f"s{i}") for i in range(401)]
    requests = build(spans)
    assert [r.span_count for r in requests] == [200, 200, 1]


def test_split_over_size_limit(monkeypatch):
    monkeypatch.setattr(type(connector), "max_request_bytes", 6000)
    requests = build([llm_span(id=f"s{i}", request={"prompt": "x" * 2500}) for i in range(5)])
    assert len(requests) > 1 and all(len(r.body) <= 6000 for r in requests)
    assert sum(r.span_count for r in requests) == 5


def test_deep_metadata_is_flattened_to_two_levels():
    span = llm_span(metadata={"a": {"b": {"c": {"d": 1}}}, "tags": {}})
    [request] = build([span])
    body = validated(request)
    assert body["metadata"]["a"] == {"b": {"c": '{"d":1}'}}


def test_unknown_roles():
    [request] = build([llm_span(request={"messages": [{"role": "developer", "content": ["x"]}]})])
    [span] = validated(request)["spans"]
    assert span["input"]["value"] == [{"role": "unknown", "content": '["x"]'}]


@pytest.mark.parametrize(
    ("status", "body", "ok", "retryable"),
    [
        (200, {"message": "Trace received successfully."}, True, False),
        (200, {"message": "No changes"}, True, False),
        (400, {"error": "bad"}, False, False),
        (401, {"message": "Invalid auth token."}, False, False),
        (405, {}, False, False),
        (429, {"error": "too many spans"}, False, True),
        (429, {"error": "ERR_PLAN_LIMIT", "message": "monthly limit"}, False, False),
        (500, {}, False, True),
    ],
)
def test_classify(status, body, ok, retryable):
    outcome = connector.classify(httpx.Response(status, json=body))
    assert (outcome.ok, outcome.retryable) == (ok, retryable)
