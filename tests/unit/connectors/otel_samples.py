"""Canonical spans and OTLP decoding helpers shared by the OpenTelemetry-family connector tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT = "b7ad6b7169203331"


def llm_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "id": "span-llm-1",
        "trace_id": TRACE,
        "parent_id": ROOT,
        "session_id": "sess-1",
        "user_id": "user-1",
        "name": "chat gpt-4o",
        "kind": "llm",
        "start_time": "2026-01-02T03:04:05.123456Z",
        "end_time": "2026-01-02T03:04:06.500Z",
        "provider": "openai",
        "model": "gpt-4o",
        "status": "ok",
        "request": {
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "parameters": {"temperature": 0.2, "max_tokens": 64, "stop": "END", "logit_bias": {"1": 2}},
        },
        "response": {
            "content": "hello",
            "messages": [{"role": "assistant", "content": "hello"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
            "finish_reason": "stop",
        },
        "metadata": {
            "environment": "prod",
            "version": "1.2.0",
            "tags": {"team": "search"},
            "untrace": {"sample_rate": 1.0, "sampled_by": "rule", "rule": "all"},
            "customer": "acme",
        },
        "metrics": {"latency_ms": 1377, "time_to_first_token_ms": 250, "estimated_cost": 0.000075},
        "attributes": {"http.route": "/v1/chat"},
        "received_at": "2026-01-02T03:04:07Z",
    }
    span.update(overrides)
    return span


def root_span() -> dict[str, Any]:
    return {
        "id": ROOT,
        "trace_id": TRACE,
        "name": "answer question",
        "kind": "chain",
        "start_time": "2026-01-02T03:04:05Z",
        "end_time": "2026-01-02T03:04:07Z",
        "request": {"prompt": "what is up?"},
        "response": {"content": "not much"},
        "user_id": "user-1",
        "session_id": "sess-1",
        "metadata": {"tags": {"team": "search"}},
        "status": "ok",
    }


def error_span() -> dict[str, Any]:
    return {
        "id": "span-err",
        "trace_id": "trace-err",
        "name": "call tool",
        "kind": "tool",
        "start_time": "2026-01-02T03:04:05Z",
        "end_time": "2026-01-02T03:04:05.5Z",
        "status": "error",
        "error": {
            "type": "TimeoutError",
            "message": "tool timed out",
            "stack": "Traceback ...\nTimeoutError",
        },
    }


def minimal_span() -> dict[str, Any]:
    return {"id": "only-id", "trace_id": "only-trace"}


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    assert message.SerializeToString() == body  # nothing unknown, nothing lost
    return message


def decode_otlp_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON back to the message: hex ids become base64 (proto3 JSON for bytes), then the strict
    proto3 JSON parser (unknown fields are errors)."""
    data = json.loads(body)
    for resource in data.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        assert len(span[key]) in (16, 32) and int(span[key], 16) >= 0
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.Parse(json.dumps(data), ExportTraceServiceRequest())


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes(holder: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in holder.attributes}


def spans_of(message: ExportTraceServiceRequest) -> list[Any]:
    return [span for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans]


def by_name(message: ExportTraceServiceRequest) -> dict[str, Any]:
    return {span.name: span for span in spans_of(message)}
