"""Phoenix: OTLP protobuf (never JSON) with OpenInference attributes and the project as a resource
attribute."""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from apps.destinations.connectors import connector_for
from apps.destinations.models import Destination
from tests.unit.connectors.otel_samples import (
    ROOT,
    attributes,
    by_name,
    decode_protobuf,
    error_span,
    llm_span,
    minimal_span,
    root_span,
    spans_of,
)


def destination(api_key: str | None = "px-key", **config) -> Destination:
    d = Destination(type="phoenix", config={"endpoint": "http://phoenix.internal:6006", **config})
    d.secrets = {"api_key": api_key} if api_key else {}
    return d


def build(spans, **kwargs):
    return connector_for("phoenix").build_requests(destination(**kwargs), spans, message_id="m1")


def test_request_shape():
    [request] = build([root_span(), llm_span()], project="search-bot")
    assert request.url == "http://phoenix.internal:6006/v1/traces"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["authorization"] == "Bearer px-key"
    message = decode_protobuf(request.body)
    assert attributes(message.resource_spans[0].resource) == {
        "service.name": "untrace",
        "openinference.project.name": "search-bot",
    }


def test_no_key_no_project():
    [request] = build([minimal_span()], api_key=None)
    assert "authorization" not in request.headers
    resource = attributes(decode_protobuf(request.body).resource_spans[0].resource)
    assert "openinference.project.name" not in resource


def test_json_is_never_sent():
    [request] = build([llm_span()], protocol="http/json")
    assert request.headers["content-type"] == "application/x-protobuf"


def test_openinference_attributes():
    [request] = build([root_span(), llm_span()])
    spans = by_name(decode_protobuf(request.body))
    attrs = attributes(spans["chat gpt-4o"])
    assert attrs["openinference.span.kind"] == "LLM"
    assert attrs["llm.model_name"] == "gpt-4o"
    assert attrs["llm.provider"] == attrs["llm.system"] == "openai"
    assert attrs["llm.token_count.prompt"] == 12
    assert attrs["llm.token_count.completion"] == 3
    assert attrs["llm.token_count.total"] == 15
    assert attrs["llm.cost.total"] == 0.000075
    assert attrs["llm.input_messages.0.message.role"] == "system"
    assert attrs["llm.input_messages.0.message.content"] == "be brief"
    assert attrs["llm.input_messages.1.message.role"] == "user"
    assert attrs["llm.input_messages.1.message.content"] == "hi"
    assert attrs["llm.output_messages.0.message.role"] == "assistant"
    assert attrs["llm.output_messages.0.message.content"] == "hello"
    assert json.loads(attrs["llm.invocation_parameters"])["temperature"] == 0.2
    assert attrs["input.mime_type"] == "application/json"
    assert json.loads(attrs["input.value"])[1] == {"role": "user", "content": "hi"}
    assert attrs["output.mime_type"] == "application/json"
    assert attrs["session.id"] == "sess-1" and attrs["user.id"] == "user-1"
    assert attrs["tag.tags"] == ["team:search"]
    metadata = json.loads(attrs["metadata"])
    assert metadata["customer"] == "acme" and metadata["environment"] == "prod"
    assert metadata["metrics"]["time_to_first_token_ms"] == 250
    assert not any(key.startswith("gen_ai.") for key in attrs)
    root = attributes(spans["answer question"])
    assert root["openinference.span.kind"] == "CHAIN"
    assert root["input.value"] == "what is up?" and root["input.mime_type"] == "text/plain"
    assert root["output.value"] == "not much" and root["output.mime_type"] == "text/plain"
    assert spans["chat gpt-4o"].parent_span_id.hex() == ROOT
    assert spans["chat gpt-4o"].trace_id == spans["answer question"].trace_id


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("embedding", "EMBEDDING"),
        ("agent", "AGENT"),
        ("tool", "TOOL"),
        ("retrieval", "RETRIEVER"),
        ("span", "CHAIN"),
    ],
)
def test_span_kinds(kind, expected):
    [span] = spans_of(decode_protobuf(build([{"id": "a", "trace_id": "t", "kind": kind}])[0].body))
    assert attributes(span)["openinference.span.kind"] == expected


def test_tool_call_messages():
    span = llm_span(
        response={
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
                }
            ]
        }
    )
    attrs = attributes(spans_of(decode_protobuf(build([span])[0].body))[0])
    base = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attrs[f"{base}.function.name"] == "f"
    assert json.loads(attrs[f"{base}.function.arguments"]) == {"a": 1}
    assert attrs[f"{base}.id"] == "c1"


def test_error_span():
    [span] = spans_of(decode_protobuf(build([error_span()])[0].body))
    assert span.status.code == Status.STATUS_CODE_ERROR and span.status.message == "tool timed out"
    assert span.events[0].name == "exception"
    assert attributes(span.events[0])["exception.message"] == "tool timed out"


def test_minimal_span():
    [span] = spans_of(decode_protobuf(build([minimal_span()])[0].body))
    assert attributes(span) == {"openinference.span.kind": "CHAIN"}


def test_split():
    requests = build([llm_span(id=f"s{i}") for i in range(600)])
    assert [r.span_count for r in requests] == [512, 88]
    big = build([llm_span(id=f"b{i}", response={"content": "x" * 2_000_000}) for i in range(3)])
    assert len(big) == 3 and all(len(r.body) <= 4 * 1024 * 1024 for r in big)


@pytest.mark.parametrize(
    ("status", "retryable"), [(200, False), (401, False), (415, False), (422, False), (503, True)]
)
def test_classify(status, retryable):
    outcome = connector_for("phoenix").classify(httpx.Response(status, content=b""))
    assert outcome.ok is (status == 200)
    assert outcome.retryable is retryable
