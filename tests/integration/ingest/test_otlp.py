"""POST /otlp/v1/traces: OTLP/HTTP protobuf and JSON, gzip, partial success, conventions mapped."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.trace import SpanKind, Status, StatusCode

from apps.traces.models import IngestBatch, Span
from tests.integration.ingest.helpers import auth, error_of, listed
from tests.unit.ingest.recorder import Recorder

pytestmark = pytest.mark.django_db

OTLP = "/otlp/v1/traces"
PROTOBUF = "application/x-protobuf"


def export(client, key, body: bytes, content_type: str = PROTOBUF, **extra):
    return client.post(OTLP, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {key}", **extra)


def accepted_protobuf(response) -> ExportTraceServiceResponse:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == PROTOBUF
    message = ExportTraceServiceResponse.FromString(response.content)
    return message


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def doc_of(client, key, span_id: str) -> dict:
    (doc,) = [d for d in listed(client, key) if d["id"] == span_id]
    return doc


def test_current_genai_conventions(client, key, project, routed, django_capture_on_commit_callbacks):
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as otel_span:
        otel_span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.request.temperature": 0.3,
                "gen_ai.usage.input_tokens": 21,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.conversation.id": "conv-9",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "It is 18C in Paris."}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
                "user.id": "u-42",
            }
        )
    (sdk_span,) = recorder.spans

    with django_capture_on_commit_callbacks(execute=True):
        message = accepted_protobuf(export(client, key, recorder.protobuf()))

    assert not message.HasField("partial_success")
    assert message == ExportTraceServiceResponse()
    span_id, trace_id = hex_id(sdk_span.context.span_id, 16), hex_id(sdk_span.context.trace_id, 32)
    doc = doc_of(client, key, span_id)
    assert doc["trace_id"] == trace_id
    assert "parent_id" not in doc
    assert (doc["name"], doc["kind"], doc["status"]) == ("chat gpt-4o", "llm", "ok")
    assert (doc["provider"], doc["model"]) == ("openai", "gpt-4o-2024-08-06")
    assert (doc["session_id"], doc["user_id"]) == ("conv-9", "u-42")
    assert doc["request"]["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert doc["request"]["parameters"] == {"model": "gpt-4o", "temperature": 0.3}
    assert doc["response"]["content"] == "It is 18C in Paris."
    assert doc["response"]["finish_reason"] == "stop"
    assert doc["response"]["usage"] == {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28}
    assert doc["metadata"] == {"environment": "staging", "version": "2.1.0"}
    assert doc["attributes"]["gen_ai.operation.name"] == "chat"
    assert doc["attributes"]["resource.service.name"] == "chatbot"
    # priced as gpt-4o: (21 * 2.50 + 7 * 10.00) / 1e6 USD
    assert doc["metrics"]["estimated_cost"] == pytest.approx(0.0001225, abs=1e-12)
    assert doc["metrics"]["latency_ms"] == pytest.approx(
        (sdk_span.end_time - sdk_span.start_time) / 1e6, abs=0.001
    )
    batch = IngestBatch.objects.get()
    assert (batch.source, batch.span_count, batch.project_id) == ("otlp", 1, project.pk)
    assert routed == [batch.pk]


def test_old_genai_conventions(client, key):
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("openai.chat") as otel_span:
        otel_span.set_attributes(
            {
                "llm.request.type": "chat",
                "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-3.5-turbo",
                "gen_ai.response.model": "gpt-3.5-turbo-0125",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "You are terse.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "Tell me a joke",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Why did the cat...",
                "gen_ai.completion.0.finish_reason": "stop",
                "gen_ai.usage.prompt_tokens": 12,
                "gen_ai.usage.completion_tokens": 30,
                "llm.usage.total_tokens": 42,
                "traceloop.association.properties.user_id": "user-7",
                "traceloop.association.properties.session_id": "chat-3",
            }
        )
    (sdk_span,) = recorder.spans

    assert not accepted_protobuf(export(client, key, recorder.protobuf())).HasField("partial_success")

    doc = doc_of(client, key, hex_id(sdk_span.context.span_id, 16))
    assert (doc["kind"], doc["provider"], doc["model"]) == ("llm", "openai", "gpt-3.5-turbo-0125")
    assert (doc["user_id"], doc["session_id"]) == ("user-7", "chat-3")
    assert doc["request"]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert doc["response"]["content"] == "Why did the cat..."
    assert doc["response"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    # priced as gpt-3.5-turbo: (12 * 0.50 + 30 * 1.50) / 1e6 USD
    assert doc["metrics"]["estimated_cost"] == pytest.approx(0.000051, abs=1e-12)
    stored = Span.objects.get(span_id=doc["id"])
    assert (stored.prompt_tokens, stored.completion_tokens, stored.total_tokens) == (12, 30, 42)


def test_openinference_conventions(client, key):
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("ChatCompletion") as otel_span:
        otel_span.set_attributes(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "claude-3-5-sonnet-20241022",
                "llm.provider": "anthropic",
                "llm.invocation_parameters": json.dumps({"max_tokens": 1024, "temperature": 0}),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Its name?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Tom.",
                "llm.token_count.prompt": 1500,
                "llm.token_count.completion": 20,
                "llm.token_count.total": 1520,
                "session.id": "sess-1",
                "user.id": "user-1",
            }
        )
    (sdk_span,) = recorder.spans

    accepted_protobuf(export(client, key, recorder.protobuf()))

    doc = doc_of(client, key, hex_id(sdk_span.context.span_id, 16))
    assert (doc["kind"], doc["provider"], doc["model"]) == ("llm", "anthropic", "claude-3-5-sonnet-20241022")
    assert (doc["session_id"], doc["user_id"]) == ("sess-1", "user-1")
    assert doc["request"]["messages"] == [{"role": "user", "content": "Its name?"}]
    assert doc["request"]["parameters"] == {"max_tokens": 1024, "temperature": 0}
    assert doc["response"]["content"] == "Tom."
    assert doc["response"]["usage"] == {"prompt_tokens": 1500, "completion_tokens": 20, "total_tokens": 1520}
    # priced as claude-3-5-sonnet: (1500 * 3.00 + 20 * 15.00) / 1e6 USD
    assert doc["metrics"]["estimated_cost"] == pytest.approx(0.0048, abs=1e-12)


def test_parent_child_and_error_make_a_tree(client, key):
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("agent run") as parent:
        parent.set_attribute("gen_ai.operation.name", "invoke_agent")
        with recorder.tracer.start_as_current_span("execute_tool search") as child:
            child.set_attribute("gen_ai.operation.name", "execute_tool")
            child.set_status(Status(StatusCode.ERROR, "tool failed"))
    sdk_child, sdk_parent = recorder.spans
    trace_id = hex_id(sdk_parent.context.trace_id, 32)

    accepted_protobuf(export(client, key, recorder.protobuf()))

    tree = client.get(f"/v1/traces/{trace_id}", **auth(key)).json()
    (root,) = tree["spans"]
    assert (root["id"], root["kind"], root["status"]) == (
        hex_id(sdk_parent.context.span_id, 16),
        "agent",
        "ok",
    )
    (leaf,) = root["children"]
    assert (leaf["id"], leaf["kind"], leaf["status"]) == (
        hex_id(sdk_child.context.span_id, 16),
        "tool",
        "error",
    )
    assert leaf["parent_id"] == root["id"]
    assert leaf["error"] == {"type": "error", "message": "tool failed"}
    assert (tree["totals"]["spans"], tree["totals"]["errors"]) == (2, 1)


def _json_export(recorder: Recorder) -> bytes:
    document = MessageToDict(recorder.request(), use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for item in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = base64.b64decode(item[key]).hex()
    return json.dumps(document).encode()


def _recorded(*names: str) -> Recorder:
    recorder = Recorder()
    for name in names:
        with recorder.tracer.start_as_current_span(name) as otel_span:
            otel_span.set_attributes({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 3})
    return recorder


def test_json_encoding_answers_json(client, key):
    recorder = _recorded("a", "b")
    response = export(client, key, _json_export(recorder), content_type="application/json")

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {}
    assert {d["name"] for d in listed(client, key)} == {"a", "b"}
    assert {d["provider"] for d in listed(client, key)} == {"openai"}


def test_gzip_protobuf(client, key):
    recorder = _recorded("zipped")
    response = export(client, key, gzip.compress(recorder.protobuf()), HTTP_CONTENT_ENCODING="gzip")
    assert accepted_protobuf(response) == ExportTraceServiceResponse()
    assert [d["name"] for d in listed(client, key)] == ["zipped"]


def test_gzip_json(client, key):
    response = export(
        client,
        key,
        gzip.compress(_json_export(_recorded("zipped json"))),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200
    assert [d["name"] for d in listed(client, key)] == ["zipped json"]


def test_partial_success_reports_rejected_spans(client, key):
    request = _recorded("ok", "bad").request()
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b""

    message = accepted_protobuf(export(client, key, request.SerializeToString()))

    assert message.HasField("partial_success")
    assert message.partial_success.rejected_spans == 1
    assert (
        message.partial_success.error_message
        == "1 span(s) rejected: span 1: id: Expected `str` of length >= 1"
    )
    assert [d["name"] for d in listed(client, key)] == ["ok"]


def test_partial_success_in_json(client, key):
    document = json.loads(_json_export(_recorded("ok", "bad")))
    bad = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    bad["spanId"] = "xyz"
    response = export(client, key, json.dumps(document).encode(), content_type="application/json")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert partial["errorMessage"].startswith("1 span(s) rejected: span 1 (xyz): ")
    assert [d["name"] for d in listed(client, key)] == ["ok"]


def test_all_spans_rejected_is_still_200_with_partial_success(client, key):
    request = _recorded("bad").request()
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b""
    message = accepted_protobuf(export(client, key, request.SerializeToString()))
    assert message.partial_success.rejected_spans == 1
    assert not Span.objects.exists()
    assert not IngestBatch.objects.exists()


def test_resent_export_is_a_no_op(client, key):
    body = _recorded("once").protobuf()
    accepted_protobuf(export(client, key, body))
    accepted_protobuf(export(client, key, body))
    assert Span.objects.count() == 1


def test_empty_export_is_accepted(client, key):
    # the test client leaves out Content-Type for an empty body unless told
    response = export(client, key, b"", CONTENT_TYPE=PROTOBUF)
    assert accepted_protobuf(response) == ExportTraceServiceResponse()
    assert not Span.objects.exists()


@pytest.mark.parametrize("body", [b"\x0a\xff", b"\xff\xff\xff\xff", b'{"resourceSpans": []}'])
def test_undecodable_protobuf_is_400(client, key, body):
    error = error_of(export(client, key, body), 400, "invalid_otlp")
    assert error["message"].startswith("invalid OTLP protobuf body")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"resourceSpans": ', "invalid JSON at line 1, column 19 (byte 18)"),
        (b'{"resourceSpans": {}}', "invalid OTLP JSON body: `resourceSpans` must be an array"),
        (b"[1]", "invalid OTLP JSON body: `ExportTraceServiceRequest` must be an object"),
        (
            b'{"resourceSpans": [{"resource": {"attributes": [{"key": "\xff"}]}}]}',
            "invalid OTLP JSON body: not valid UTF-8",
        ),
    ],
)
def test_invalid_otlp_json_is_400(client, key, body, message):
    error = error_of(export(client, key, body, content_type="application/json"), 400, "invalid_otlp")
    assert error["message"].startswith(message)


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", "application/jsonl"])
def test_unknown_content_type_is_415(client, key, content_type):
    error = error_of(
        export(client, key, _recorded("x").protobuf(), content_type=content_type),
        415,
        "unsupported_media_type",
    )
    assert error["message"] == (
        f"unsupported Content-Type {content_type!r}; use application/x-protobuf or application/json"
    )
    assert not Span.objects.exists()


def test_too_many_spans_is_413(client, key, limits):
    limits.UNTRACE_MAX_BATCH_ITEMS = 2
    error = error_of(export(client, key, _recorded("a", "b", "c").protobuf()), 413, "payload_too_large")
    assert "3 items; at most 2" in error["message"]
    assert not Span.objects.exists()


def test_body_over_the_limit_is_413(client, key, limits):
    limits.UNTRACE_MAX_BODY_BYTES = 200
    body = _recorded("a" * 300).protobuf()
    error = error_of(export(client, key, body), 413, "payload_too_large")
    assert error["message"] == "the request body is larger than 200 bytes"


def test_get_is_405(client, key):
    error_of(client.get(OTLP, **auth(key)), 405, "method_not_allowed")


def test_a_span_the_store_cannot_hold_is_rejected_alone(client, key):
    document = json.loads(_json_export(_recorded("ok", "big")))
    big = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    big["attributes"].append({"key": "n", "value": {"intValue": str(2**70)}})

    response = export(client, key, json.dumps(document).encode(), content_type="application/json")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": f"1 span(s) rejected: span {big['spanId']}: "
            "the store refused this span: a value is out of range",
        }
    }
    assert [d["name"] for d in listed(client, key)] == ["ok"]
