"""HoneyHive events batch: requests checked with the models of HoneyHive's Python SDK
(`PostEventBatchRequest` of the route sent to, and the `/v1` `PostEventRequest`)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from honeyhive._generated.models.PostEventBatchResponse import PostEventBatchResponse
from honeyhive._generated.models.PostEventRequest import PostEventRequest
from honeyhive.models import PostEventBatchRequest

from apps.destinations.connectors import connector_for
from apps.destinations.connectors.honeyhive import NAMESPACE, HoneyHiveConnector, stable_uuid
from tests.unit.connectors import obs_samples as samples

SDK_FIELDS = set(PostEventRequest.model_fields) | {"project"}


def dest(**config: Any):
    return samples.destination("honeyhive", {"project": "Support", **config}, {"api_key": "hh-key"})


def events_of(requests) -> list[dict[str, Any]]:
    events = []
    for request in requests:
        body = orjson.loads(request.body)
        parsed = PostEventBatchRequest.model_validate(body)
        assert set(body) == {"events"}
        for raw, event in zip(body["events"], parsed.events, strict=True):
            assert set(raw) <= SDK_FIELDS, set(raw) - SDK_FIELDS
            PostEventRequest.model_validate({k: v for k, v in raw.items() if k != "project"})
            assert event.event_type in ("model", "tool", "chain")
            uuid.UUID(event.event_id)
            uuid.UUID(event.session_id)
            uuid.UUID(event.parent_id)
            events.append(raw)
    return events


def test_registered():
    assert isinstance(connector_for("honeyhive"), HoneyHiveConnector)


def test_url_and_headers():
    (request,) = HoneyHiveConnector().build_requests(dest(), samples.trace(), message_id="m")
    assert request.method == "POST"
    assert request.url == "https://api.dp1.us.honeyhive.ai/events/batch"
    assert request.headers["authorization"] == "Bearer hh-key"
    assert request.headers["content-type"] == "application/json"
    assert request.span_count == 3
    assert HoneyHiveConnector().endpoint(dest(api_url="https://hh.example.com/")) == (
        "https://hh.example.com/events/batch"
    )


def test_model_event_mapping():
    (event,) = events_of(HoneyHiveConnector().build_requests(dest(), [samples.llm()], message_id="m"))
    assert event["project"] == "Support"
    assert event["source"] == "untrace"
    assert event["event_type"] == "model"
    assert event["event_name"] == "chat gpt-4o-mini"
    assert event["event_id"] == str(uuid.uuid5(NAMESPACE, "span-llm"))
    assert event["session_id"] == stable_uuid(samples.TRACE)
    assert event["parent_id"] == stable_uuid("span-agent")
    assert event["config"] == {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "temperature": 0.3,
        "max_tokens": 128,
    }
    assert event["inputs"]["chat_history"][1] == {"role": "user", "content": "Where is my parcel?"}
    assert event["outputs"]["role"] == "assistant" and event["outputs"]["content"] == "Arriving Friday."
    assert event["outputs"]["finish_reason"] == "stop"
    assert event["start_time"] == 1772600767250.0 and event["end_time"] == 1772600768750.0
    assert event["duration"] == 1500.0
    metadata = event["metadata"]
    assert (metadata["prompt_tokens"], metadata["completion_tokens"], metadata["total_tokens"]) == (21, 4, 25)
    assert metadata["cost"] == 0.000123
    assert metadata["session"] == "conv-9" and metadata["trace_id"] == samples.TRACE
    assert metadata["environment"] == "prod" and metadata["version"] == "2.1.0"
    assert metadata["tags"] == {"team": "care", "tier": "gold"}
    assert metadata["kind"] == "llm" and metadata["span_id"] == "span-llm"
    assert metadata["attributes"] == {"gen_ai.system": "openai"}
    assert event["metrics"]["time_to_first_token_ms"] == 320
    assert "estimated_cost" not in event["metrics"]
    assert event["user_properties"] == {"user_id": "user-7"}
    assert "error" not in event


def test_nested_trace_shares_a_session():
    events = {
        e["metadata"]["span_id"]: e
        for e in events_of(HoneyHiveConnector().build_requests(dest(), samples.trace(), message_id="m"))
    }
    root = events["span-agent"]
    assert root["event_type"] == "chain"
    assert root["parent_id"] == root["session_id"]
    assert root["inputs"] == {"messages": [{"role": "user", "content": "Where is my parcel?"}]}
    assert root["outputs"] == {"content": "Arriving Friday."}
    for child in ("span-llm", "span-tool"):
        assert events[child]["parent_id"] == root["event_id"]
        assert events[child]["session_id"] == root["session_id"]


def test_error_span():
    (event,) = events_of(
        HoneyHiveConnector().build_requests(dest(), [samples.failing_tool()], message_id="m")
    )
    assert event["event_type"] == "tool"
    assert event["error"] == "TimeoutError: carrier API timed out"
    assert event["metadata"]["error_stack"] == "Traceback ..."
    assert event["metadata"]["status"] == "error"
    assert event["inputs"] == {"prompt": '{"parcel": "P-1"}'}


def test_bare_span():
    (event,) = events_of(HoneyHiveConnector().build_requests(dest(), [samples.bare()], message_id="m"))
    assert event["event_type"] == "chain" and event["event_name"] == "unknown"
    assert event["inputs"] == {}
    assert event["session_id"] == stable_uuid("trace-bare") == event["parent_id"]
    assert not {"start_time", "end_time", "duration", "outputs", "config", "error"} & set(event)


def test_ids_are_stable():
    first = HoneyHiveConnector().build_requests(dest(), samples.trace(), message_id="a")
    again = HoneyHiveConnector().build_requests(dest(), samples.trace(), message_id="b")
    assert first[0].body == again[0].body


def test_split_by_count_and_size(monkeypatch):
    spans = [samples.llm(id=f"s{i}") for i in range(5)]
    monkeypatch.setattr(HoneyHiveConnector, "max_batch_spans", 2)
    assert [r.span_count for r in HoneyHiveConnector().build_requests(dest(), spans, message_id="m")] == [
        2,
        2,
        1,
    ]
    monkeypatch.setattr(HoneyHiveConnector, "max_batch_spans", 500)
    monkeypatch.setattr(HoneyHiveConnector, "max_request_bytes", 3000)
    requests = HoneyHiveConnector().build_requests(dest(), spans, message_id="m")
    assert len(requests) > 1 and all(len(r.body) <= 3000 for r in requests)
    assert [e["metadata"]["span_id"] for e in events_of(requests)] == [f"s{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("status", "body", "ok", "retryable"),
    [
        (200, {"event_ids": ["a", "b"], "success": True}, True, False),
        (200, {"event_ids": [], "success": False}, False, False),
        (400, {"error": "Invalid request", "details": "event_type is required"}, False, False),
        (401, {"error": "Unauthorized"}, False, False),
        (403, {"error": "Forbidden"}, False, False),
        (429, {"error": "Too Many Requests"}, False, True),
        (500, {"error": "Internal Server Error"}, False, True),
    ],
)
def test_classify(status, body, ok, retryable):
    if status == 200 and body["success"]:
        PostEventBatchResponse.model_validate(body)
    outcome = HoneyHiveConnector().classify(httpx.Response(status, json=body))
    assert (outcome.ok, outcome.retryable, outcome.status) == (ok, retryable, status)
