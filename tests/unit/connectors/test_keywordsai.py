"""Keywords AI connector: logs for POST /api/request-logs/batch/create, checked with the
`keywordsai-sdk` log models (`KeywordsAILogParams`, `KeywordsAIFullLogParams`)."""

from __future__ import annotations

import warnings

import httpx
import orjson
import pytest

from apps.destinations.connectors import connector_for
from tests.unit.connectors.llm_samples import bare_span, destination, llm_span, tool_error_span, trace

with warnings.catch_warnings():  # the SDK's models emit deprecation warnings on import
    warnings.simplefilter("ignore")
    from keywordsai_sdk.keywordsai_types.log_types import KeywordsAIFullLogParams, KeywordsAILogParams

connector = connector_for("keywordsai")
FIELDS = set(KeywordsAIFullLogParams.model_fields)


def build(spans, **config):
    return connector.build_requests(destination("keywordsai", config), spans, message_id="m")


def logs_of(requests):
    logs = []
    for request in requests:
        body = orjson.loads(request.body)
        assert set(body) == {"logs"}
        logs.extend(body["logs"])
    return logs


def validated(log):
    """Every key is a field of the SDK's log model, and the model accepts the log."""
    assert set(log) <= FIELDS, set(log) - FIELDS
    KeywordsAILogParams.model_validate(
        {k: v for k, v in log.items() if k in KeywordsAILogParams.model_fields}
    )
    return KeywordsAIFullLogParams.model_validate(log)


def test_request_shape():
    [request] = build(trace())
    assert request.method == "POST"
    assert request.url == "https://api.keywordsai.co/api/request-logs/batch/create"
    assert request.headers["authorization"] == "Bearer key-123"
    assert request.headers["content-type"] == "application/json"
    assert request.span_count == 3


@pytest.mark.parametrize(
    "api_url",
    [
        "https://endpoint.keywordsai.co",
        "https://endpoint.keywordsai.co/api",
        "https://endpoint.keywordsai.co/api/",
    ],
)
def test_api_url_override(api_url):
    [request] = build([bare_span()], api_url=api_url)
    assert request.url == "https://endpoint.keywordsai.co/api/request-logs/batch/create"


def test_llm_log_fields():
    [log] = logs_of(build([llm_span()]))
    model = validated(log)
    assert log["model"] == "gpt-4o" and log["provider_id"] == "openai"
    assert log["log_type"] == "chat"
    assert orjson.loads(log["input"])[1] == {"role": "user", "content": "Where is my order?"}
    assert orjson.loads(log["output"]) == {"role": "assistant", "content": "It ships tomorrow."}
    assert log["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert model.usage.prompt_tokens == 12
    assert log["cost"] == 0.00042
    assert log["latency"] == pytest.approx(1.3765)
    assert log["time_to_first_token"] == pytest.approx(0.21)
    assert log["tokens_per_second"] == 3.6
    assert log["customer_identifier"] == "user-1" and log["thread_identifier"] == "sess-1"
    assert log["start_time"] == "2026-01-02T03:04:05.123456Z"
    assert log["timestamp"] == "2026-01-02T03:04:06.500000Z"
    assert log["temperature"] == 0.2 and log["max_tokens"] == 256
    assert log["metadata"]["parameters"] == {"user": "abc"}
    assert log["metadata"]["team"] == "support" and log["metadata"]["tier"] == "gold"
    assert log["metadata"]["environment"] == "prod" and log["metadata"]["provider"] == "openai"
    assert log["status_code"] == 200 and "error_message" not in log


def test_nested_trace_links_spans():
    logs = {log["span_name"]: log for log in logs_of(build(trace()))}
    for log in logs.values():
        validated(log)
        assert log["trace_unique_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert log["span_workflow_name"] == "support-agent"
    assert logs["support-agent"]["span_parent_id"] is None
    assert logs["support-agent"]["log_type"] == "agent"
    assert logs["chat gpt-4o"]["span_parent_id"] == "span-root"
    assert logs["lookup_order"]["span_parent_id"] == "span-root"
    assert logs["chat gpt-4o"]["span_unique_id"] == "span-llm-1"


def test_error_log():
    [log] = logs_of(build([tool_error_span()]))
    validated(log)
    assert log["status_code"] == 500
    assert log["error_message"] == "TimeoutError: orders API timed out\n\nline 1\nline 2"
    assert log["log_type"] == "tool"
    assert log["input"] == "order 42"


def test_bare_span():
    [log] = logs_of(build([bare_span()]))
    validated(log)
    assert log == {
        "trace_unique_id": "trace-bare",
        "span_unique_id": "span-bare",
        "span_parent_id": None,
        "span_name": "span",
        "log_type": "task",
        "status_code": 200,
    }


def test_unknown_roles_are_kept_as_none():
    span = llm_span(request={"messages": [{"role": "function", "content": "42"}]})
    [log] = logs_of(build([span]))
    validated(log)
    assert orjson.loads(log["input"]) == [{"role": "none", "content": "42"}]


def test_split_over_count_and_size_limits(monkeypatch):
    assert connector.max_batch_spans == 5000
    requests = build([llm_span(id=f"s{i}") for i in range(5001)])
    assert [r.span_count for r in requests] == [5000, 1]
    monkeypatch.setattr(type(connector), "max_request_bytes", 5000)
    requests = build([llm_span(id=f"s{i}", request={"prompt": "x" * 2000}) for i in range(6)])
    assert len(requests) > 1 and all(len(r.body) <= 5000 for r in requests)
    assert sum(r.span_count for r in requests) == 6


def _answer(status, body, sent_logs):
    request = httpx.Request(
        "POST",
        "https://api.keywordsai.co/api/request-logs/batch/create",
        content=orjson.dumps({"logs": sent_logs}),
    )
    return httpx.Response(status, json=body, request=request)


def test_classify_per_item_errors():
    sent = logs_of(build(trace()))
    outcome = connector.classify(_answer(201, [{"id": "a"}, {"error": "invalid model"}, {"id": "c"}], sent))
    assert outcome.ok
    assert outcome.item_errors == [{"span_id": "span-llm-1", "status": 400, "message": "invalid model"}]
    outcome = connector.classify(_answer(200, {"errors": [{"index": 2, "error": "bad"}]}, sent))
    assert outcome.item_errors == [{"span_id": "span-tool-1", "status": 400, "message": "bad"}]
    assert connector.classify(_answer(200, {"message": "log successful"}, sent)).item_errors == []


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False),
        (201, True, False),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (413, False, False),
        (429, False, True),
        (500, False, True),
        (502, False, True),
    ],
)
def test_classify(status, ok, retryable):
    outcome = connector.classify(httpx.Response(status, json={"detail": "x"}))
    assert (outcome.ok, outcome.retryable) == (ok, retryable)
