"""Helicone connector: one async-log request per span, checked against the body Helicone's
own `helicone-helpers` `HeliconeManualLogger.send_log` builds."""

from __future__ import annotations

import httpx
import orjson
import pytest
from helicone_helpers import manual_logger
from helicone_helpers.manual_logger import HeliconeManualLogger

from apps.destinations.connectors import connector_for
from apps.destinations.connectors._spans import stable_uuid
from tests.unit.connectors.llm_samples import (
    agent_span,
    bare_span,
    destination,
    llm_span,
    tool_error_span,
    trace,
)

connector = connector_for("helicone")


def build(spans, **config):
    return connector.build_requests(destination("helicone", config), spans, message_id="m")


def reference(monkeypatch, provider, request, response, options):
    """What the Helicone SDK posts for the same call: (url, body, headers)."""
    sent = {}

    def post(url, json, headers):
        sent.update(url=url, json=json, headers=headers)
        return httpx.Response(200, text="ok")

    monkeypatch.setattr(manual_logger.requests, "post", post)
    HeliconeManualLogger("key-123").send_log(provider, request, response, options)
    return sent


def same_shape(ours, theirs, path=""):
    """Our body has the SDK body's keys with the same JSON types (where both are set)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), path
        for key, value in theirs.items():
            if value is None or key in ("_type", "toolName", "textBody"):
                continue
            assert key in ours, f"{path}.{key}"
            same_shape(ours[key], value, f"{path}.{key}")
    elif theirs is not None:
        assert isinstance(ours, type(theirs)) or (
            isinstance(ours, int | float) and isinstance(theirs, int | float)
        ), path


def test_llm_span_matches_the_sdk_body(monkeypatch):
    [request] = build([agent_span(), llm_span()])[1:]
    body = orjson.loads(request.body)
    sdk = reference(
        monkeypatch,
        "openai",
        body["providerRequest"]["json"],
        body["providerResponse"]["json"],
        {"start_time": 1767323045.123, "end_time": 1767323046.5, "time_to_first_token_ms": 210},
    )
    assert request.url == "https://api.worker.helicone.ai/oai/v1/log" == sdk["url"]
    assert request.headers["authorization"] == sdk["headers"]["Authorization"] == "Bearer key-123"
    assert request.headers["content-type"] == "application/json"
    assert set(body) == set(sdk["json"]) == {"providerRequest", "providerResponse", "timing"}
    same_shape(body, sdk["json"])
    assert body["timing"] == {
        "startTime": {"seconds": 1767323045, "milliseconds": 123},
        "endTime": {"seconds": 1767323046, "milliseconds": 500},
        "timeToFirstToken": 210,
    }


def test_llm_span_fields():
    requests = build(trace())
    assert len(requests) == 3 and all(r.span_count == 1 for r in requests)
    body = orjson.loads(requests[1].body)
    req, res = body["providerRequest"], body["providerResponse"]
    assert req["url"] == "custom-model-nopath"
    assert req["json"]["model"] == "gpt-4o"
    assert req["json"]["messages"][1] == {"role": "user", "content": "Where is my order?"}
    assert req["json"]["temperature"] == 0.2 and req["json"]["max_tokens"] == 256
    assert res["status"] == 200
    assert res["json"]["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "It ships tomorrow."},
            "finish_reason": "stop",
        }
    ]
    assert res["json"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    meta = req["meta"]
    assert meta["Helicone-Session-Id"] == "0af7651916cd43dd8448eb211c80319c"
    assert meta["Helicone-Session-Path"] == "/support-agent/chat gpt-4o"
    assert meta["Helicone-Session-Name"] == "support-agent"
    assert meta["Helicone-User-Id"] == "user-1"
    assert meta["Helicone-Request-Id"] == str(stable_uuid("span-llm-1"))
    assert meta["Helicone-Property-session_id"] == "sess-1"
    assert meta["Helicone-Property-environment"] == "prod"
    assert meta["Helicone-Property-team"] == "support" and meta["Helicone-Property-tier"] == "gold"
    assert meta["Helicone-Property-estimated_cost"] == "0.00042"
    assert all(isinstance(v, str) for v in meta.values())


def test_error_tool_span(monkeypatch):
    [request] = build([tool_error_span()])
    body = orjson.loads(request.body)
    assert request.url == "https://api.worker.helicone.ai/custom/v1/log"
    assert body["providerRequest"]["json"]["_type"] == "tool"
    assert body["providerRequest"]["json"]["toolName"] == "lookup_order"
    assert body["providerResponse"]["status"] == 500
    assert body["providerResponse"]["json"]["error"] == {
        "message": "TimeoutError: orders API timed out\n\nline 1\nline 2",
        "type": "TimeoutError",
    }
    sdk = reference(
        monkeypatch,
        None,
        body["providerRequest"]["json"],
        body["providerResponse"]["json"],
        {"start_time": 1.0, "end_time": 2.0},
    )
    assert sdk["url"] == request.url
    same_shape(body, sdk["json"])


def test_bare_span():
    [request] = build([bare_span()])
    body = orjson.loads(request.body)
    assert body["providerRequest"]["json"] == {}
    assert body["providerResponse"] == {"status": 200, "headers": {}, "json": {}}
    assert "timing" not in body
    assert body["providerRequest"]["meta"]["Helicone-Session-Id"] == "trace-bare"
    assert body["providerRequest"]["meta"]["Helicone-Session-Path"] == "/span"


def test_parent_outside_the_batch_starts_the_path_at_the_span():
    [request] = build([llm_span()])
    meta = orjson.loads(request.body)["providerRequest"]["meta"]
    assert meta["Helicone-Session-Path"] == "/chat gpt-4o"
    assert meta["Helicone-Session-Name"] == "chat gpt-4o"


def test_ids_are_stable():
    assert build([llm_span()])[0].body == build([llm_span()])[0].body


def test_api_url_override():
    [request] = build([llm_span(provider="anthropic")], api_url="https://eu.example.com/")
    assert request.url == "https://eu.example.com/custom/v1/log"


@pytest.mark.parametrize(
    ("status", "body", "ok", "retryable"),
    [
        (200, b"ok", True, False),
        (200, b'{"error": "could not write"}', False, True),
        (400, b'{"error": "Payload too large"}', False, False),
        (401, b"unauthorized", False, False),
        (429, b"slow down", False, True),
        (500, b"boom", False, True),
    ],
)
def test_classify(status, body, ok, retryable):
    outcome = connector.classify(httpx.Response(status, content=body))
    assert (outcome.ok, outcome.retryable) == (ok, retryable)
