"""Whatever a client sends, the ingest endpoints answer a 2xx or a 4xx in the error envelope, never a 500."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.unit.ingest.recorder import Recorder

pytestmark = pytest.mark.django_db

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON_OK = {202, 207, 400, 413, 415}
OTLP_OK = {200, 400, 413, 415}

SPAN_KEYS = [
    "id", "trace_id", "parent_id", "session_id", "user_id", "name", "kind", "start_time", "end_time",
    "provider", "model", "request", "response", "metadata", "metrics", "error", "attributes",
    "messages", "prompt", "parameters", "content", "usage", "prompt_tokens", "completion_tokens",
    "total_tokens", "finish_reason", "environment", "version", "tags", "latency_ms", "estimated_cost",
    "time_to_first_token_ms", "type", "message", "stack", "role",
]  # fmt: skip
OTLP_KEYS = [
    "resourceSpans", "resource", "attributes", "scopeSpans", "scope", "spans", "traceId", "spanId",
    "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano", "status", "code", "events",
    "links", "key", "value", "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue",
    "kvlistValue", "bytesValue", "values", "timeUnixNano", "traceState",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["llm", "tool", "2025-01-15T10:00:00Z", "gpt-4o-mini", "\x00", "\ud800", "", "a" * 1100]),
    st.integers(min_value=0, max_value=2**64).map(str),
)


def json_values(keys: list[str]):
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=25,
    )


def span_like(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys), json_values(keys), max_size=8)


short_text = st.text(max_size=12)
times = st.one_of(
    st.integers(min_value=-(2**50), max_value=2**50),
    st.floats(allow_nan=False),
    st.sampled_from(
        ["2025-01-15T10:00:00Z", "2025-01-15T10:00:01.5+02:00", "2025-01-15", "0001-01-01T00:00:00Z"]
    ),
)
# mostly valid spans: they reach accounting and the store, not only validation
plausible_spans = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=12)},
    optional={
        "trace_id": st.text(min_size=1, max_size=12),
        "parent_id": st.none() | short_text,
        "session_id": short_text,
        "name": short_text,
        "kind": st.sampled_from(["llm", "embedding", "chain", "agent", "tool", "retrieval", "span"]),
        "start_time": times,
        "end_time": times,
        "provider": st.sampled_from(["openai", "Azure", "", "bedrock"]) | short_text,
        "model": st.sampled_from(["gpt-4o-mini", "claude-3.5-sonnet", "us.anthropic.claude-3-haiku-v1:0", ""])
        | short_text,
        "request": st.fixed_dictionaries(
            {},
            optional={
                "prompt": st.text(max_size=40),
                "messages": st.lists(
                    st.dictionaries(
                        st.sampled_from(["role", "content", "name"]), st.text(max_size=20) | scalars
                    ),
                    max_size=3,
                ),
                "parameters": st.dictionaries(short_text, scalars, max_size=3),
            },
        ),
        "response": st.fixed_dictionaries(
            {},
            optional={
                "content": st.text(max_size=40),
                "usage": st.dictionaries(
                    st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"]),
                    st.integers(min_value=0, max_value=2**62),
                ),
                "finish_reason": short_text,
            },
        ),
        "metadata": st.fixed_dictionaries(
            {},
            optional={"environment": short_text, "tags": st.dictionaries(short_text, short_text, max_size=3)},
        ),
        "metrics": st.dictionaries(
            st.sampled_from(["latency_ms", "estimated_cost", "time_to_first_token_ms"]),
            st.floats(min_value=0),
        ),
        "error": st.none() | st.fixed_dictionaries({"type": short_text, "message": short_text}),
        "custom": json_values(SPAN_KEYS),
    },
)


def _otlp_document(spans):
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}


single_bodies = st.one_of(plausible_spans, json_values(SPAN_KEYS), span_like(SPAN_KEYS))
batch_bodies = st.one_of(
    json_values(SPAN_KEYS),
    st.lists(st.one_of(plausible_spans, span_like(SPAN_KEYS), json_values(SPAN_KEYS)), max_size=5).map(
        lambda t: {"traces": t}
    ),
)
otlp_json_bodies = st.one_of(
    json_values(OTLP_KEYS),
    st.lists(span_like(OTLP_KEYS), max_size=4).map(_otlp_document),
)
content_types = st.sampled_from(["application/json"] * 6 + ["text/plain", "application/x-protobuf", ""])
encodings = st.sampled_from([None] * 4 + ["gzip", "gzip-header-only", "br"])


def _send(client, key, path, body: bytes, content_type: str, encoding: str | None):
    extra = {"HTTP_X_UNTRACE_KEY": key, "CONTENT_TYPE": content_type}
    if encoding == "gzip":
        body = gzip.compress(body)
        extra["HTTP_CONTENT_ENCODING"] = "gzip"
    elif encoding == "gzip-header-only":
        extra["HTTP_CONTENT_ENCODING"] = "gzip"
    elif encoding is not None:
        extra["HTTP_CONTENT_ENCODING"] = encoding
    return client.generic("POST", path, body, content_type=content_type, **extra)


def _check(response, allowed: set[int]) -> None:
    assert response.status_code in allowed, response.content[:500]
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json"
        body = json.loads(response.content)
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "details"}
        assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    elif response["Content-Type"] == "application/json":
        assert isinstance(json.loads(response.content), dict)


def _dumps(value) -> bytes:
    return json.dumps(value).encode()


@SETTINGS
@given(body=single_bodies, content_type=content_types, encoding=encodings)
def test_single_json_values(client, key, body, content_type, encoding):
    _check(_send(client, key, "/v1/traces", _dumps(body), content_type, encoding), JSON_OK)


@SETTINGS
@given(body=batch_bodies, content_type=content_types, encoding=encodings)
def test_batch_json_values(client, key, body, content_type, encoding):
    response = _send(client, key, "/v1/traces/batch", _dumps(body), content_type, encoding)
    _check(response, JSON_OK)
    if response.status_code in (202, 207):
        payload = response.json()
        assert set(payload) == {"accepted", "errors"}
        assert all(set(e) == {"index", "message", "field"} for e in payload["errors"])


@SETTINGS
@given(
    body=st.binary(max_size=300), path=st.sampled_from(["/v1/traces", "/v1/traces/batch"]), encoding=encodings
)
def test_json_endpoints_take_arbitrary_bytes(client, key, body, path, encoding):
    _check(_send(client, key, path, body, "application/json", encoding), JSON_OK)


@SETTINGS
@given(body=otlp_json_bodies, encoding=encodings)
def test_otlp_json_values(client, key, body, encoding):
    response = _send(client, key, "/otlp/v1/traces", _dumps(body), "application/json", encoding)
    _check(response, OTLP_OK)
    if response.status_code == 200:
        assert response["Content-Type"] == "application/json"


@SETTINGS
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/x-protobuf", "application/json", "application/protobuf", "x/y"]
    ),
    encoding=encodings,
)
def test_otlp_arbitrary_bytes(client, key, body, content_type, encoding):
    response = _send(client, key, "/otlp/v1/traces", body, content_type, encoding)
    _check(response, OTLP_OK)
    if response.status_code == 200 and content_type != "application/json":
        ExportTraceServiceResponse.FromString(response.content)


def _recorded_protobuf() -> bytes:
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("parent") as parent:
        parent.set_attributes({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"})
        with recorder.tracer.start_as_current_span("child") as child:
            child.set_attributes(
                {"gen_ai.input.messages": '[{"role": "user"}]', "gen_ai.usage.input_tokens": 3}
            )
    return recorder.protobuf()


VALID_PROTOBUF = _recorded_protobuf()


@SETTINGS
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(VALID_PROTOBUF) - 1), st.integers(0, 255)),
        max_size=4,
    )
)
def test_otlp_mutated_protobuf(client, key, edits):
    body = bytearray(VALID_PROTOBUF)
    for position, value in edits:
        body[position] = value
    response = _send(client, key, "/otlp/v1/traces", bytes(body), "application/x-protobuf", None)
    _check(response, OTLP_OK)
    if response.status_code == 200:
        ExportTraceServiceResponse.FromString(response.content)
