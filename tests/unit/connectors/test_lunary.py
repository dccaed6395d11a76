"""Lunary run ingestion: requests and answers.

Lunary's Python SDK ships no models for the ingest API (it builds dicts in
`lunary.track_event`), so events are checked against the field names that function
sends and the types and events the server's ingest route accepts."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from apps.destinations.connectors import connector_for
from apps.destinations.connectors.lunary import LunaryConnector, run_id
from tests.unit.connectors import obs_samples as samples

# The keys of the event dict built by lunary.track_event (lunary 1.4.x).
SDK_FIELDS = {
    "event",
    "type",
    "name",
    "userId",
    "userProps",
    "tags",
    "threadTags",
    "runId",
    "parentRunId",
    "timestamp",
    "message",
    "input",
    "output",
    "error",
    "feedback",
    "runtime",
    "tokensUsage",
    "metadata",
    "params",
    "templateId",
    "appId",
    "threadMetadata",
}
TYPES = {"llm", "chain", "agent", "tool", "log", "embed", "retriever", "chat", "convo", "message", "thread"}


def dest(**config: Any):
    return samples.destination("lunary", dict(config), {"api_key": "lunary-public-key"})


def events_of(requests) -> list[dict[str, Any]]:
    events = []
    for request in requests:
        body = orjson.loads(request.body)
        assert set(body) == {"events"}
        for event in body["events"]:
            assert set(event) <= SDK_FIELDS, set(event) - SDK_FIELDS
            assert event["type"] in TYPES
            assert event["event"] in ("start", "end", "error")
            uuid.UUID(event["runId"])
            if "parentRunId" in event:
                uuid.UUID(event["parentRunId"])
            events.append(event)
    return events


def by_run(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["runId"], e["event"]): e for e in events}


def test_registered():
    assert isinstance(connector_for("lunary"), LunaryConnector)


def test_url_and_headers():
    (request,) = LunaryConnector().build_requests(dest(), samples.trace(), message_id="m")
    assert request.method == "POST"
    assert request.url == "https://api.lunary.ai/v1/runs/ingest"
    assert request.headers["authorization"] == "Bearer lunary-public-key"
    assert request.headers["content-type"] == "application/json"
    assert request.span_count == 3
    assert LunaryConnector().endpoint(dest(api_url="http://lunary.internal:3333/")) == (
        "http://lunary.internal:3333/v1/runs/ingest"
    )


def test_llm_run_is_a_start_end_pair():
    start, end = events_of(LunaryConnector().build_requests(dest(), [samples.llm()], message_id="m"))
    rid = run_id("span-llm")
    assert (start["event"], end["event"]) == ("start", "end")
    assert start["runId"] == end["runId"] == rid
    assert start["type"] == end["type"] == "llm"
    assert start["name"] == "gpt-4o-mini"
    assert start["parentRunId"] == run_id("span-agent")
    assert start["timestamp"] == "2026-03-04T05:06:07.250Z"
    assert end["timestamp"] == "2026-03-04T05:06:08.750Z"
    assert start["input"][1] == {"role": "user", "content": "Where is my parcel?"}
    assert start["params"] == {"temperature": 0.3, "max_tokens": 128}
    assert start["userId"] == "user-7"
    assert sorted(start["tags"]) == ["team:care", "tier:gold"]
    metadata = start["metadata"]
    assert metadata["span_id"] == "span-llm" and metadata["trace_id"] == samples.TRACE
    assert metadata["session_id"] == "conv-9" and metadata["provider"] == "openai"
    assert metadata["cost"] == 0.000123 and metadata["time_to_first_token_ms"] == 320
    assert metadata["environment"] == "prod" and metadata["finish_reason"] == "stop"
    assert metadata["attributes"] == {"gen_ai.system": "openai"}
    assert "tags" not in metadata
    assert end["output"] == {"role": "assistant", "content": "Arriving Friday."}
    assert end["tokensUsage"] == {"prompt": 21, "completion": 4}


def test_nested_trace():
    events = by_run(events_of(LunaryConnector().build_requests(dest(), samples.trace(), message_id="m")))
    root = events[(run_id("span-agent"), "start")]
    assert root["type"] == "agent" and root["name"] == "support-agent"
    assert "parentRunId" not in root
    assert events[(run_id("span-agent"), "end")]["output"] == "Arriving Friday."
    for child in ("span-llm", "span-tool"):
        assert events[(run_id(child), "start")]["parentRunId"] == run_id("span-agent")


def test_error_span():
    start, failure = events_of(
        LunaryConnector().build_requests(dest(), [samples.failing_tool()], message_id="m")
    )
    assert start["type"] == "tool" and start["input"] == '{"parcel": "P-1"}'
    assert failure["event"] == "error" and failure["runId"] == start["runId"]
    assert failure["error"] == {"message": "TimeoutError: carrier API timed out", "stack": "Traceback ..."}
    assert "output" not in failure


def test_bare_span():
    start, end = events_of(LunaryConnector().build_requests(dest(), [samples.bare()], message_id="m"))
    assert start["type"] == "chain" and start["name"] == "span" and start["input"] is None
    assert "parentRunId" not in start
    assert start["timestamp"] == end["timestamp"] and start["timestamp"].endswith("Z")
    assert end["event"] == "end" and end["output"] is None


def test_kinds():
    kinds = {"embedding": "embed", "retrieval": "retriever", "span": "chain", "chain": "chain"}
    for kind, expected in kinds.items():
        start, _ = events_of(
            LunaryConnector().build_requests(dest(), [samples.agent(kind=kind)], message_id="m")
        )
        assert start["type"] == expected


def test_ids_are_stable():
    first = LunaryConnector().build_requests(dest(), samples.trace(), message_id="a")
    again = LunaryConnector().build_requests(dest(), samples.trace(), message_id="b")
    assert first[0].body == again[0].body


def test_split_keeps_pairs_together(monkeypatch):
    spans = [samples.llm(id=f"s{i}") for i in range(5)]
    monkeypatch.setattr(LunaryConnector, "max_batch_spans", 2)
    requests = LunaryConnector().build_requests(dest(), spans, message_id="m")
    assert [r.span_count for r in requests] == [2, 2, 1]
    monkeypatch.setattr(LunaryConnector, "max_batch_spans", 250)
    monkeypatch.setattr(LunaryConnector, "max_request_bytes", 4000)
    requests = LunaryConnector().build_requests(dest(), spans, message_id="m")
    assert len(requests) > 1 and all(len(r.body) <= 4000 for r in requests)
    for request in requests:
        events = events_of([request])
        assert len(events) == 2 * request.span_count
        assert {e["runId"] for e in events if e["event"] == "start"} == {
            e["runId"] for e in events if e["event"] == "end"
        }


def answer(status: int, payload: Any, sent: bytes = b"{}") -> httpx.Response:
    request = httpx.Request("POST", "https://api.lunary.ai/v1/runs/ingest", content=sent)
    return httpx.Response(status, json=payload, request=request)


def test_classify_partial_success():
    (request,) = LunaryConnector().build_requests(dest(), samples.trace(), message_id="m")
    results = [
        {"id": run_id("span-agent"), "success": True},
        {"id": run_id("span-llm"), "success": False, "error": "Invalid input"},
        {"id": run_id("span-tool"), "success": False, "error": "Run already exists"},
    ]
    outcome = LunaryConnector().classify(answer(200, {"results": results}, request.body))
    assert outcome.ok
    assert outcome.item_errors == [{"span_id": "span-llm", "status": "rejected", "message": "Invalid input"}]


@pytest.mark.parametrize(
    ("status", "payload", "ok", "retryable"),
    [
        (200, {"results": [{"id": "x", "success": True}]}, True, False),
        (401, {"error": "Project does not exist"}, False, False),
        (402, {"error": "Incorrect project id format"}, False, False),
        (429, {"error": "Too many requests"}, False, True),
        (500, {"error": "Internal error"}, False, True),
    ],
)
def test_classify(status, payload, ok, retryable):
    outcome = LunaryConnector().classify(answer(status, payload))
    assert (outcome.ok, outcome.retryable, outcome.status) == (ok, retryable, status)
    assert outcome.item_errors == []
