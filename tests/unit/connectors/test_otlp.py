"""The generic OTLP connector and the shared OTLP encoder, checked by parsing bodies back with
opentelemetry-proto (protobuf) and protobuf's strict JSON parser (OTLP/JSON)."""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from apps.destinations.connectors import connector_for
from apps.destinations.connectors import otlp_encoding as otlp
from apps.destinations.models import Destination
from tests.unit.connectors.otel_samples import (
    ROOT,
    TRACE,
    attributes,
    by_name,
    decode_otlp_json,
    decode_protobuf,
    error_span,
    llm_span,
    minimal_span,
    root_span,
    spans_of,
)


def destination(**config) -> Destination:
    d = Destination(type="otlp", config={"endpoint": "https://collector.example.com:4318", **config})
    d.secrets = {"headers": {"x-api-key": "k-123"}}
    return d


def build(spans, **config):
    return connector_for("otlp").build_requests(destination(**config), spans, message_id="m1")


def test_registered_and_posts_protobuf_to_v1_traces():
    [request] = build([root_span(), llm_span()])
    assert request.method == "POST"
    assert request.url == "https://collector.example.com:4318/v1/traces"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["x-api-key"] == "k-123"
    assert request.span_count == 2
    message = decode_protobuf(request.body)
    resource = message.resource_spans[0]
    assert attributes(resource.resource) == {"service.name": "untrace"}
    assert resource.scope_spans[0].scope.name == "untrace"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://c:4318/", "http://c:4318/v1/traces"),
        ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ("https://api.example.com/otlp", "https://api.example.com/otlp/v1/traces"),
    ],
)
def test_traces_url(endpoint, url):
    assert build([minimal_span()], endpoint=endpoint)[0].url == url


def test_api_url_overrides_endpoint():
    assert build([minimal_span()], api_url="http://proxy:9000")[0].url == "http://proxy:9000/v1/traces"


def test_llm_span_genai_attributes():
    [request] = build([root_span(), llm_span()])
    spans = by_name(decode_protobuf(request.body))
    span = spans["chat gpt-4o"]
    assert span.trace_id.hex() == TRACE  # already 32 hex: used as is
    assert span.parent_span_id.hex() == ROOT  # already 16 hex: used as is
    assert spans["answer question"].span_id.hex() == ROOT
    assert len(span.span_id) == 8 and span.span_id == otlp.span_id("span-llm-1")
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.start_time_unix_nano == 1767323045123456000
    assert span.end_time_unix_nano == 1767323046500000000
    assert span.status.code == Status.STATUS_CODE_OK
    attrs = attributes(span)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "gpt-4o"
    assert attrs["gen_ai.usage.input_tokens"] == attrs["gen_ai.usage.prompt_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == attrs["gen_ai.usage.completion_tokens"] == 3
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.request.stop_sequences"] == ["END"]
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.response.time_to_first_chunk"] == 0.25
    assert attrs["gen_ai.usage.cost"] == 0.000075
    assert attrs["gen_ai.conversation.id"] == attrs["session.id"] == "sess-1"
    assert attrs["user.id"] == "user-1"
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}
    ]
    assert json.loads(attrs["untrace.metadata"])["customer"] == "acme"
    assert attrs["untrace.tags.team"] == "search"
    assert attrs["untrace.metrics.latency_ms"] == 1377
    assert attrs["http.route"] == "/v1/chat"  # the span's own attributes pass through
    root = attributes(spans["answer question"])
    assert root["gen_ai.operation.name"] == "invoke_workflow"
    assert spans["answer question"].kind == Span.SPAN_KIND_INTERNAL
    assert not spans["answer question"].parent_span_id


def test_tool_calls_and_text_completion():
    span = llm_span(
        request={"prompt": "complete me"},
        response={
            "messages": [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": '{"q": 1}'}}],
                }
            ]
        },
    )
    attrs = attributes(spans_of(decode_protobuf(build([span])[0].body))[0])
    assert attrs["gen_ai.operation.name"] == "text_completion"
    assert json.loads(attrs["gen_ai.input.messages"])[0]["parts"][0]["content"] == "complete me"
    assert json.loads(attrs["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "lookup", "arguments": '{"q": 1}'}
    ]


def test_minimal_span():
    [request] = build([minimal_span()])
    [span] = spans_of(decode_protobuf(request.body))
    assert span.name == "span"
    assert len(span.trace_id) == 16 and len(span.span_id) == 8
    assert span.trace_id == otlp.trace_id("only-trace")
    assert not span.parent_span_id
    assert span.status.code == Status.STATUS_CODE_UNSET
    assert span.start_time_unix_nano == span.end_time_unix_nano == 0
    assert attributes(span) == {}


def test_error_span_has_status_and_exception_event():
    [request] = build([error_span()])
    [span] = spans_of(decode_protobuf(request.body))
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert span.status.message == "tool timed out"
    [event] = span.events
    assert event.name == "exception"
    assert event.time_unix_nano == span.end_time_unix_nano
    assert attributes(event) == {
        "exception.type": "TimeoutError",
        "exception.message": "tool timed out",
        "exception.stacktrace": "Traceback ...\nTimeoutError",
    }
    attrs = attributes(span)
    assert attrs["error.type"] == "TimeoutError"
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "call tool"


def test_ids_are_stable_and_uuids_are_used_as_trace_ids():
    first = build([llm_span(trace_id="6f1c2a5e-1d0b-4a11-9a55-0c4b1b7f6d2e")])[0].body
    again = build([llm_span(trace_id="6f1c2a5e-1d0b-4a11-9a55-0c4b1b7f6d2e")])[0].body
    assert first == again
    [span] = spans_of(decode_protobuf(first))
    assert span.trace_id.hex() == "6f1c2a5e1d0b4a119a550c4b1b7f6d2e"
    assert otlp.trace_id("x") != otlp.trace_id("y")
    assert otlp.span_id("0000000000000000") != bytes(8)  # an all-zero id is invalid: hashed instead


def test_json_protocol_follows_otlp_json_mapping():
    [request] = build([root_span(), llm_span(), error_span()], protocol="http/json")
    assert request.headers["content-type"] == "application/json"
    data = json.loads(request.body)
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert span["traceId"] == TRACE and span["parentSpanId"] == ROOT  # hex, not base64
    assert span["kind"] == 3  # enums as integers
    assert span["startTimeUnixNano"] == "1767323045123456000"  # int64 as a string
    assert span["status"] == {"code": 1}
    tokens = next(a for a in span["attributes"] if a["key"] == "gen_ai.usage.input_tokens")
    assert tokens["value"] == {"intValue": "12"}
    assert data["resourceSpans"][0]["scopeSpans"][0]["spans"][2]["status"]["code"] == 2
    parsed = decode_otlp_json(request.body)
    protobuf = decode_protobuf(build([root_span(), llm_span(), error_span()])[0].body)
    assert parsed == protobuf  # the same message in both encodings


def test_split_by_span_count_and_size():
    spans = [llm_span(id=f"s{i}") for i in range(1100)]
    requests = build(spans)
    assert [r.span_count for r in requests] == [512, 512, 76]
    assert sum(len(spans_of(decode_protobuf(r.body))) for r in requests) == 1100
    big = [llm_span(id=f"b{i}", response={"content": "x" * 1_500_000}) for i in range(5)]
    sized = build(big)
    assert all(len(r.body) <= 4 * 1024 * 1024 for r in sized)
    assert sum(r.span_count for r in sized) == 5 and len(sized) >= 2
    huge = build([llm_span(response={"content": "y" * 5_000_000})])
    assert len(huge) == 1 and huge[0].span_count == 1  # a single larger span still goes alone


def _response(status, content=b"", content_type="application/x-protobuf", headers=None):
    return httpx.Response(status, content=content, headers={"content-type": content_type, **(headers or {})})


def test_classify_success_and_partial_success():
    connector = connector_for("otlp")
    assert connector.classify(_response(200, ExportTraceServiceResponse().SerializeToString())).ok
    partial = ExportTraceServiceResponse()
    partial.partial_success.rejected_spans = 2
    partial.partial_success.error_message = "spans too old"
    outcome = connector.classify(_response(200, partial.SerializeToString()))
    assert outcome.ok and outcome.item_errors == [
        {"span_id": None, "status": "rejected", "message": "spans too old", "rejected_spans": 2}
    ]
    as_json = b'{"partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad"}}'
    outcome = connector.classify(_response(200, as_json, "application/json"))
    assert outcome.item_errors[0]["rejected_spans"] == 3
    assert connector.classify(_response(200, b'{"partialSuccess": {}}', "application/json")).item_errors == []


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (413, False), (429, True), (500, False)]
    + [(502, True), (503, True), (504, True)],
)
def test_classify_errors_per_otlp_spec(status, retryable):
    outcome = connector_for("otlp").classify(_response(status, b"{}", headers={"retry-after": "7"}))
    assert not outcome.ok and outcome.retryable is retryable
    assert outcome.retry_after == 7.0


def test_service_name_from_project():
    from apps.accounts.models import Project

    d = destination()
    d.project = Project(id=1, name="Search", slug="search")
    assert otlp.service_name(d) == "search"
