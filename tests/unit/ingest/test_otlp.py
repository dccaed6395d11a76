"""OTLP/HTTP protobuf requests built by the OpenTelemetry SDK, mapped to canonical spans."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from apps.ingest.otlp import (
    OtlpDecodeError,
    UnsupportedMediaType,
    decode_otlp,
    encode_otlp_response,
    response_content_type,
)
from apps.traces.schema import SpanLimits, TooManyItems, span_to_dict
from tests.unit.ingest.recorder import Recorder

LIMITS = SpanLimits()
PROTOBUF = "application/x-protobuf"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def as_datetime(nanos: int) -> datetime:
    return EPOCH + timedelta(microseconds=nanos // 1000)


def decode(recorder: Recorder, limits: SpanLimits = LIMITS):
    result = decode_otlp(recorder.protobuf(), content_type=PROTOBUF, limits=limits)
    assert result.errors == []
    return result.spans


def common_attributes() -> dict:
    return {
        "otel.scope.name": "tests.instrumentation",
        "otel.scope.version": "0.3.1",
        "resource.service.name": "chatbot",
        "resource.telemetry.sdk.language": "python",
        "resource.telemetry.sdk.name": "opentelemetry",
    }


def without_volatile(attributes: dict) -> dict:
    return {
        key: value
        for key, value in attributes.items()
        if key not in ("resource.telemetry.sdk.version", "resource.service.instance.id")
    }


def test_current_genai_conventions():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.request.temperature": 0.3,
                "gen_ai.request.max_tokens": 200,
                "gen_ai.request.stop_sequences": ["END"],
                "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.usage.input_tokens": 21,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.usage.cache_read_input_tokens": 5,
                "gen_ai.conversation.id": "conv-9",
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
                "gen_ai.input.messages": json.dumps(
                    [
                        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                        {
                            "role": "assistant",
                            "parts": [
                                {
                                    "type": "tool_call",
                                    "id": "call_1",
                                    "name": "weather",
                                    "arguments": {"city": "Paris"},
                                }
                            ],
                        },
                        {
                            "role": "tool",
                            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C"}],
                        },
                    ]
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
    sdk_span = recorder.spans[0]

    (span,) = decode(recorder)

    assert span.id == hex_id(sdk_span.context.span_id, 16)
    assert span.trace_id == hex_id(sdk_span.context.trace_id, 32)
    assert span.parent_id is None
    assert span.name == "chat gpt-4o"
    assert span.kind == "llm"
    assert span.start_time == as_datetime(sdk_span.start_time)
    assert span.end_time == as_datetime(sdk_span.end_time)
    assert span.provider == "openai"
    assert span.model == "gpt-4o-2024-08-06"
    assert span.session_id == "conv-9"
    assert span.user_id == "u-42"
    assert span.request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C"}]},
    ]
    assert span.request.prompt is None
    assert span.request.parameters == {
        "model": "gpt-4o",
        "temperature": 0.3,
        "max_tokens": 200,
        "stop_sequences": ["END"],
    }
    assert span.response.content == "It is 18C in Paris."
    assert span.response.messages is None
    assert span.response.finish_reason == "stop"
    assert (span.response.usage.prompt_tokens, span.response.usage.completion_tokens) == (21, 7)
    assert span.response.usage.total_tokens is None
    assert span.response.usage.extra == {"cache_read_input_tokens": 5}
    assert span.metadata == {"environment": "staging", "version": "2.1.0"}
    assert span.error is None
    assert without_volatile(span.attributes) == {
        **common_attributes(),
        "gen_ai.operation.name": "chat",
        "gen_ai.response.id": "chatcmpl-1",
        "otel.span_kind": "client",
    }


def test_old_genai_conventions_as_emitted_by_openllmetry():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("openai.chat") as span:
        span.set_attributes(
            {
                "llm.request.type": "chat",
                "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "gpt-3.5-turbo",
                "gen_ai.response.model": "gpt-3.5-turbo-0125",
                "gen_ai.request.temperature": 0.7,
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "You are terse.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "Tell me a joke",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.finish_reason": "tool_calls",
                "gen_ai.completion.0.tool_calls.0.id": "call_9",
                "gen_ai.completion.0.tool_calls.0.name": "get_joke",
                "gen_ai.completion.0.tool_calls.0.arguments": '{"topic": "cats"}',
                "gen_ai.completion.1.role": "assistant",
                "gen_ai.completion.1.content": "Why did the cat...",
                "gen_ai.usage.prompt_tokens": 12,
                "gen_ai.usage.completion_tokens": 30,
                "llm.usage.total_tokens": 42,
                "llm.is_streaming": False,
                "traceloop.association.properties.user_id": "user-7",
                "traceloop.association.properties.session_id": "chat-3",
            }
        )

    (span,) = decode(recorder)

    assert span.kind == "llm"
    assert span.provider == "OpenAI"
    assert span.model == "gpt-3.5-turbo-0125"
    assert span.user_id == "user-7"
    assert span.session_id == "chat-3"
    assert span.request.messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert span.request.parameters == {"model": "gpt-3.5-turbo", "temperature": 0.7}
    assert span.response.messages == [
        {
            "role": "assistant",
            "finish_reason": "tool_calls",
            "tool_calls": [{"id": "call_9", "name": "get_joke", "arguments": '{"topic": "cats"}'}],
        },
        {"role": "assistant", "content": "Why did the cat..."},
    ]
    assert span.response.content is None
    assert span.response.finish_reason == "tool_calls"
    usage = span.response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 30, 42)
    assert without_volatile(span.attributes) == {
        **common_attributes(),
        "llm.request.type": "chat",
        "llm.is_streaming": False,
        "otel.span_kind": "internal",
    }


def test_openinference_conventions():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("ChatCompletion") as span:
        span.set_attributes(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "claude-3-5-sonnet-20241022",
                "llm.provider": "anthropic",
                "llm.system": "anthropic",
                "llm.invocation_parameters": json.dumps({"max_tokens": 1024, "temperature": 0}),
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.contents.0.message_content.type": "text",
                "llm.input_messages.0.message.contents.0.message_content.text": "What is in this image?",
                "llm.input_messages.0.message.contents.1.message_content.type": "image",
                "llm.input_messages.0.message.contents.1.message_content.image.image.url": "https://x/cat.png",
                "llm.input_messages.1.message.role": "assistant",
                "llm.input_messages.1.message.contents.0.message_content.type": "text",
                "llm.input_messages.1.message.contents.0.message_content.text": "A cat.",
                "llm.input_messages.2.message.role": "user",
                "llm.input_messages.2.message.content": "Its name?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Call the lookup tool.",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "tc_1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{}",
                "llm.token_count.prompt": 1500,
                "llm.token_count.completion": 20,
                "llm.token_count.total": 1520,
                "input.value": '{"messages": []}',
                "input.mime_type": "application/json",
                "output.value": "Call the lookup tool.",
                "session.id": "sess-1",
                "user.id": "user-1",
                "metadata": '{"team": "vision"}',
                "tag.tags": ["beta"],
            }
        )

    (span,) = decode(recorder)

    assert span.kind == "llm"
    assert span.provider == "anthropic"
    assert span.model == "claude-3-5-sonnet-20241022"
    assert (span.session_id, span.user_id) == ("sess-1", "user-1")
    assert span.request.parameters == {"max_tokens": 1024, "temperature": 0}
    assert span.request.messages == [
        {
            "role": "user",
            "contents": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image", "image": {"image": {"url": "https://x/cat.png"}}},
            ],
        },
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Its name?"},
    ]
    assert span.request.prompt is None
    assert span.response.content == "Call the lookup tool."
    assert span.response.messages == [
        {
            "role": "assistant",
            "content": "Call the lookup tool.",
            "tool_calls": [{"id": "tc_1", "function": {"name": "lookup", "arguments": "{}"}}],
        }
    ]
    usage = span.response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1500, 20, 1520)
    assert without_volatile(span.attributes) == {
        **common_attributes(),
        "input.value": '{"messages": []}',
        "input.mime_type": "application/json",
        "output.value": "Call the lookup tool.",
        "metadata": '{"team": "vision"}',
        "tag.tags": ["beta"],
        "otel.span_kind": "internal",
    }


def test_openinference_chain_uses_input_and_output_values():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("rag") as span:
        span.set_attributes(
            {"openinference.span.kind": "CHAIN", "input.value": "question", "output.value": "answer"}
        )

    (span,) = decode(recorder)

    assert span.kind == "chain"
    assert span.request.prompt == "question"
    assert span.response.content == "answer"
    assert "input.value" not in span.attributes and "output.value" not in span.attributes


def test_parent_child_and_error_with_exception_event():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("agent run") as parent:
        parent.set_attribute("gen_ai.operation.name", "invoke_agent")
        with recorder.tracer.start_as_current_span("execute_tool search") as child:
            child.set_attribute("gen_ai.operation.name", "execute_tool")
            child.add_event("retry", {"attempt": 2})
            try:
                raise TimeoutError("search backend timed out")
            except TimeoutError as exc:
                child.record_exception(exc)
                child.set_status(Status(StatusCode.ERROR, "tool failed"))
    sdk_child, sdk_parent = recorder.spans

    child, parent = decode(recorder)

    assert parent.kind == "agent" and child.kind == "tool"
    assert child.parent_id == parent.id == hex_id(sdk_parent.context.span_id, 16)
    assert child.trace_id == parent.trace_id
    assert parent.error is None
    assert child.error.type == "TimeoutError"
    assert child.error.message == "tool failed"
    assert "TimeoutError: search backend timed out" in child.error.stack
    assert child.error.extra == {
        "exception.message": "search backend timed out",
        "exception.escaped": "False",
    }
    (retry,) = child.attributes["events"]
    assert retry["name"] == "retry"
    assert retry["attributes"] == {"attempt": 2}
    assert retry["time"] == as_datetime(sdk_child.events[0].timestamp).isoformat().replace("+00:00", "Z")


def test_error_without_exception_event():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("call") as span:
        span.set_status(Status(StatusCode.ERROR, "upstream 500"))

    (span,) = decode(recorder)

    assert span.kind == "span"
    assert (span.error.type, span.error.message, span.error.stack) == ("error", "upstream 500", None)


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({}, "span"),
        ({"http.method": "GET"}, "span"),
        ({"llm.model_name": "x"}, "llm"),
        ({"gen_ai.request.model": "x"}, "llm"),
        ({"openinference.span.kind": "EMBEDDING"}, "embedding"),
        ({"openinference.span.kind": "CHAIN"}, "chain"),
        ({"openinference.span.kind": "AGENT"}, "agent"),
        ({"openinference.span.kind": "TOOL"}, "tool"),
        ({"openinference.span.kind": "RETRIEVER"}, "retrieval"),
        ({"openinference.span.kind": "RERANKER"}, "span"),
        ({"openinference.span.kind": "GUARDRAIL", "llm.model_name": "x"}, "span"),
        ({"gen_ai.operation.name": "chat"}, "llm"),
        ({"gen_ai.operation.name": "text_completion"}, "llm"),
        ({"gen_ai.operation.name": "generate_content"}, "llm"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "create_agent"}, "agent"),
        ({"gen_ai.operation.name": "something_new"}, "llm"),
        ({"traceloop.span.kind": "workflow"}, "chain"),
        ({"traceloop.span.kind": "tool"}, "tool"),
        ({"llm.request.type": "embedding"}, "embedding"),
    ],
)
def test_kind_mapping(attributes, kind):
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("s") as span:
        span.set_attributes(attributes)

    (span,) = decode(recorder)

    assert span.kind == kind


def test_conflicting_values_keep_the_loser_in_attributes():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("s") as span:
        span.set_attributes(
            {
                "gen_ai.provider.name": "azure.ai.openai",
                "gen_ai.system": "openai",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.prompt_tokens": 10,
                "llm.token_count.prompt": 11,
                "gen_ai.response.finish_reasons": ["stop", "length"],
            }
        )

    (span,) = decode(recorder)

    assert span.provider == "azure.ai.openai"
    assert span.response.usage.prompt_tokens == 10
    assert span.response.finish_reason == "stop"
    assert span.attributes["gen_ai.system"] == "openai"
    assert span.attributes["llm.token_count.prompt"] == 11
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop", "length"]
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert "gen_ai.usage.prompt_tokens" not in span.attributes


def test_lossy_genai_messages_keep_the_original_attribute():
    original = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "a"}, {"type": "text", "content": "b"}]}]
    )
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("s") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.input.messages": original})

    (span,) = decode(recorder)

    assert span.request.messages == [{"role": "user", "content": "a\nb"}]
    assert span.attributes["gen_ai.input.messages"] == original


def test_flattened_attributes_that_are_not_messages_stay_as_they_are():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("s") as span:
        span.set_attributes(
            {
                "gen_ai.prompt.0": "x",
                "gen_ai.prompt.0.role": "user",
                "llm.input_messages.first.message.role": "user",
            }
        )

    (span,) = decode(recorder)

    assert span.request is None
    assert span.attributes["gen_ai.prompt.0"] == "x"
    assert span.attributes["gen_ai.prompt.0.role"] == "user"
    assert span.attributes["llm.input_messages.first.message.role"] == "user"


def test_all_attribute_value_types_survive():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("s") as span:
        span.set_attributes(
            {"s": "x", "i": -3, "f": 1.5, "b": True, "ss": ["a", "b"], "ii": [1, 2], "bb": [True]}
        )

    (span,) = decode(recorder)

    assert {k: span.attributes[k] for k in ("s", "i", "f", "b", "ss", "ii", "bb")} == {
        "s": "x",
        "i": -3,
        "f": 1.5,
        "b": True,
        "ss": ["a", "b"],
        "ii": [1, 2],
        "bb": [True],
    }


def test_links_and_trace_state_are_kept():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("first") as first:
        pass
    with recorder.tracer.start_as_current_span(
        "second", links=[Link(first.get_span_context(), {"why": "retry"})]
    ):
        pass
    sdk_first = recorder.spans[0]

    _, second = decode(recorder)

    assert second.attributes["links"] == [
        {
            "trace_id": hex_id(sdk_first.context.trace_id, 32),
            "span_id": hex_id(sdk_first.context.span_id, 16),
            "attributes": {"why": "retry"},
        }
    ]


def test_canonical_spans_serialise_to_json():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("s") as span:
        span.set_attributes({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1})

    (span,) = decode(recorder)
    out = span_to_dict(span)

    assert out["model"] == "m" and out["response"] == {"usage": {"prompt_tokens": 1}}
    assert out["start_time"].endswith("Z")


# --- rejected spans and partial success ---------------------------------------------------


def two_span_request() -> ExportTraceServiceRequest:
    recorder = Recorder()
    for name in ("ok", "bad"):
        with recorder.tracer.start_as_current_span(name):
            pass
    return recorder.request()


def test_span_with_empty_span_id_is_rejected_and_counted():
    request = two_span_request()
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b""

    result = decode_otlp(request.SerializeToString(), content_type=PROTOBUF, limits=LIMITS)

    assert [span.name for span in result.spans] == ["ok"]
    assert result.rejected == 1
    assert result.errors == ["span 1: id: Expected `str` of length >= 1"]
    assert result.error_message == "1 span(s) rejected: span 1: id: Expected `str` of length >= 1"


def test_span_breaking_a_limit_is_rejected():
    request = two_span_request()
    request.resource_spans[0].scope_spans[0].spans[1].name = "n" * 50

    result = decode_otlp(
        request.SerializeToString(), content_type=PROTOBUF, limits=SpanLimits(max_id_length=40)
    )

    assert result.rejected == 1
    span_id = request.resource_spans[0].scope_spans[0].spans[1].span_id.hex()
    assert result.errors == [f"span 1 ({span_id}): name: string is longer than 40 characters"]


def test_error_message_lists_at_most_five_errors():
    recorder = Recorder()
    for _ in range(7):
        with recorder.tracer.start_as_current_span("s"):
            pass
    request = recorder.request()
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.span_id = b""

    result = decode_otlp(request.SerializeToString(), content_type=PROTOBUF, limits=LIMITS)

    assert result.rejected == 7 and result.spans == []
    assert result.error_message.startswith("7 span(s) rejected: span 0: id: ")
    assert result.error_message.endswith("; and 2 more")


def test_too_many_spans():
    request = two_span_request()
    with pytest.raises(TooManyItems):
        decode_otlp(
            request.SerializeToString(), content_type=PROTOBUF, limits=SpanLimits(max_items_per_batch=1)
        )


@pytest.mark.parametrize("body", [b"\x0a\xff", b"\xff\xff\xff\xff", b'{"resourceSpans": []}'])
def test_undecodable_protobuf(body):
    with pytest.raises(OtlpDecodeError, match="invalid OTLP protobuf body"):
        decode_otlp(body, content_type=PROTOBUF, limits=LIMITS)


def test_empty_body_is_an_empty_request():
    result = decode_otlp(b"", content_type=PROTOBUF, limits=LIMITS)
    assert (result.spans, result.rejected, result.error_message) == ([], 0, "")


@pytest.mark.parametrize("content_type", ["text/plain", "", "application/grpc"])
def test_unsupported_content_type(content_type):
    with pytest.raises(UnsupportedMediaType):
        decode_otlp(b"", content_type=content_type, limits=LIMITS)


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/protobuf; charset=binary"])
def test_protobuf_content_types(content_type):
    assert (
        decode_otlp(two_span_request().SerializeToString(), content_type=content_type, limits=LIMITS).rejected
        == 0
    )


# --- response -----------------------------------------------------------------------------


def test_protobuf_response_with_partial_success():
    raw = encode_otlp_response(rejected=2, message="2 span(s) rejected", content_type=PROTOBUF)

    response = ExportTraceServiceResponse.FromString(raw)

    assert response.HasField("partial_success")
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == "2 span(s) rejected"


def test_protobuf_response_when_all_accepted_leaves_partial_success_unset():
    raw = encode_otlp_response(rejected=0, message="", content_type=PROTOBUF)

    assert raw == b""
    assert not ExportTraceServiceResponse.FromString(raw).HasField("partial_success")


def test_json_response():
    assert encode_otlp_response(rejected=0, message="", content_type="application/json") == b"{}"
    raw = encode_otlp_response(rejected=3, message="bad", content_type="application/json; charset=utf-8")
    assert json.loads(raw) == {"partialSuccess": {"rejectedSpans": "3", "errorMessage": "bad"}}


def test_response_content_type_follows_the_request():
    assert response_content_type("application/json; charset=utf-8") == "application/json"
    assert response_content_type("application/protobuf") == "application/x-protobuf"
    assert response_content_type("text/plain") == "application/x-protobuf"
