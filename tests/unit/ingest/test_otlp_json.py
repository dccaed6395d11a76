"""OTLP/JSON requests (hex ids, int64 as strings) and gzip bodies."""

import base64
import contextlib
import gzip
import json
import zlib
from datetime import UTC, datetime

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.ingest.otlp import OtlpDecodeError, UnsupportedMediaType, decode_otlp, maybe_gunzip
from apps.traces.schema import BodyTooLarge, SchemaError, SpanLimits
from tests.unit.ingest.recorder import Recorder

LIMITS = SpanLimits()
JSON = "application/json"
TRACE_ID = "5B8EFFF798038103D269B633813FC60C"
SPAN_ID = "EEE19B7EC3C1B174"
PARENT_ID = "EEE19B7EC3C1B173"


def kv(key, **value):
    return {"key": key, "value": value}


def request(*spans, resource=None, scope=None):
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource or [kv("service.name", stringValue="api")]},
                "scopeSpans": [
                    {"scope": scope or {"name": "openinference.instrumentation.openai"}, "spans": list(spans)}
                ],
            }
        ]
    }


def span(**fields):
    return {
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        "parentSpanId": PARENT_ID,
        "name": "ChatCompletion",
        "kind": 3,
        "startTimeUnixNano": "1736935200123456789",
        "endTimeUnixNano": 1736935201000000000,
        "attributes": [
            kv("openinference.span.kind", stringValue="LLM"),
            kv("llm.model_name", stringValue="gpt-4o-mini"),
            kv("llm.token_count.prompt", intValue="12"),
            kv("llm.token_count.completion", intValue=3),
            kv("llm.input_messages.0.message.role", stringValue="user"),
            kv("llm.input_messages.0.message.content", stringValue="hi"),
            kv("llm.output_messages.0.message.role", stringValue="assistant"),
            kv("llm.output_messages.0.message.content", stringValue="hello"),
            kv("ratio", doubleValue=0.5),
            kv("nan", doubleValue="NaN"),
            kv("flag", boolValue=True),
            kv("blob", bytesValue=base64.b64encode(b"\x00\x01").decode()),
            kv("list", arrayValue={"values": [{"stringValue": "a"}, {"intValue": "2"}]}),
            kv("map", kvlistValue={"values": [kv("inner", stringValue="x")]}),
            kv("empty", **{}),
        ],
        "status": {},
        **fields,
    }


def decode_json(document, limits=LIMITS):
    return decode_otlp(json.dumps(document).encode(), content_type=JSON, limits=limits)


def test_json_request_is_mapped():
    result = decode_json(request(span()))

    assert result.errors == []
    (mapped,) = result.spans
    assert mapped.id == SPAN_ID.lower()
    assert mapped.trace_id == TRACE_ID.lower()
    assert mapped.parent_id == PARENT_ID.lower()
    assert mapped.kind == "llm"
    assert mapped.model == "gpt-4o-mini"
    assert mapped.start_time == datetime(2025, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)
    assert mapped.end_time == datetime(2025, 1, 15, 10, 0, 1, tzinfo=UTC)
    assert mapped.request.messages == [{"role": "user", "content": "hi"}]
    assert mapped.response.content == "hello"
    assert (mapped.response.usage.prompt_tokens, mapped.response.usage.completion_tokens) == (12, 3)
    attributes = mapped.attributes
    assert attributes["ratio"] == 0.5
    assert attributes["nan"] != attributes["nan"]
    assert attributes["flag"] is True
    assert attributes["blob"] == "AAE="
    assert attributes["list"] == ["a", 2]
    assert attributes["map"] == {"inner": "x"}
    assert attributes["empty"] is None
    assert attributes["otel.span_kind"] == "client"
    assert attributes["otel.scope.name"] == "openinference.instrumentation.openai"
    assert attributes["resource.service.name"] == "api"


def test_proto_field_names_and_enum_names_are_accepted():
    item = span(kind="SPAN_KIND_SERVER", status={"code": "STATUS_CODE_ERROR", "message": "boom"})
    item["trace_id"] = item.pop("traceId")
    item["start_time_unix_nano"] = item.pop("startTimeUnixNano")
    document = {"resource_spans": [{"scope_spans": [{"spans": [item]}]}]}

    (mapped,) = decode_json(document).spans

    assert mapped.trace_id == TRACE_ID.lower()
    assert mapped.start_time == datetime(2025, 1, 15, 10, 0, 0, 123456, tzinfo=UTC)
    assert mapped.attributes["otel.span_kind"] == "server"
    assert (mapped.error.type, mapped.error.message) == ("error", "boom")


def test_json_and_protobuf_encodings_of_the_same_spans_agree():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("parent") as parent:
        parent.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 4})
        with recorder.tracer.start_as_current_span("child") as child:
            child.set_attributes({"openinference.span.kind": "TOOL", "input.value": "q", "n": [1.5, 2.5]})
            child.add_event("note", {"k": "v"})
    proto = recorder.request()
    document = MessageToDict(proto, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for item in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = base64.b64decode(item[key]).hex()

    from_json = decode_json(document)
    from_proto = decode_otlp(proto.SerializeToString(), content_type="application/x-protobuf", limits=LIMITS)

    assert from_json.errors == from_proto.errors == []
    assert from_json.spans == from_proto.spans


def test_span_with_non_hex_id_is_rejected_others_accepted():
    result = decode_json(request(span(), span(spanId="not-hex!"), span(spanId="")))

    assert len(result.spans) == 1
    assert result.rejected == 2
    assert result.errors == [
        "span 1 (not-hex!): `spanId` must be a hex string",
        "span 2: id: Expected `str` of length >= 1",
    ]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"startTimeUnixNano": "soon"}, "`startTimeUnixNano` must be an integer"),
        ({"startTimeUnixNano": True}, "`startTimeUnixNano` must be an integer"),
        ({"startTimeUnixNano": str(10**30)}, "is out of range"),
        ({"attributes": {"a": 1}}, "`attributes` must be an array"),
        ({"attributes": [{"value": {"stringValue": "x"}}]}, "attributes must be objects with a string `key`"),
        ({"attributes": [kv("a", intValue="x")]}, "`intValue` must be an integer"),
        ({"attributes": [kv("a", stringValue=5)]}, "invalid stringValue"),
        ({"attributes": [{"key": "a", "value": "x"}]}, "an attribute value must be an AnyValue object"),
        ({"name": 5}, "`name` must be a string"),
        ({"status": "ERROR"}, "`status` must be an object"),
        ({"events": {}}, "`events` must be an array"),
    ],
)
def test_malformed_span_fields_reject_only_that_span(fields, error):
    result = decode_json(request(span(spanId="00f067aa0ba902b7"), span(**fields)))

    assert len(result.spans) == 1
    assert result.rejected == 1
    assert error in result.errors[0]
    assert result.errors[0].startswith("span 1")


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ([], "`ExportTraceServiceRequest` must be an object"),
        ({"resourceSpans": {}}, "`resourceSpans` must be an array"),
        ({"resourceSpans": [1]}, "`resourceSpans[]` must be an object"),
        ({"resourceSpans": [{"resource": {"attributes": 3}}]}, "`attributes` must be an array"),
        ({"resourceSpans": [{"scopeSpans": [{"spans": {}}]}]}, "`spans` must be an array"),
        ({"resourceSpans": [{"scopeSpans": [{"scope": {"name": 1}}]}]}, "must be strings"),
    ],
)
def test_malformed_request_structure_is_undecodable(document, error):
    with pytest.raises(OtlpDecodeError, match="invalid OTLP JSON body") as info:
        decode_json(document)
    assert error in str(info.value)


def test_invalid_json_is_undecodable_with_its_position():
    with pytest.raises(OtlpDecodeError, match=r"invalid JSON at line 2, column 3 \(byte 4\)"):
        decode_otlp(b"{\n  ]", content_type=JSON, limits=LIMITS)


def test_empty_json_request():
    assert decode_json({}).spans == []
    assert decode_json({"resourceSpans": []}).rejected == 0


def test_body_size_limit_applies():
    with pytest.raises(BodyTooLarge):
        decode_otlp(
            json.dumps(request(span())).encode(), content_type=JSON, limits=SpanLimits(max_body_bytes=100)
        )


# --- gzip ---------------------------------------------------------------------------------


def test_gzip_body_round_trip():
    raw = json.dumps(request(span())).encode()

    body = maybe_gunzip(gzip.compress(raw), "gzip", max_bytes=len(raw))

    assert body == raw
    assert len(decode_otlp(body, content_type=JSON, limits=LIMITS).spans) == 1


@pytest.mark.parametrize("encoding", [None, "", "identity", " Identity "])
def test_identity_is_passed_through(encoding):
    assert maybe_gunzip(b"abc", encoding, max_bytes=1) == b"abc"


def test_deflate_and_x_gzip_and_concatenated_members():
    assert maybe_gunzip(zlib.compress(b"hello"), "deflate", max_bytes=10) == b"hello"
    assert maybe_gunzip(gzip.compress(b"a") + gzip.compress(b"b"), "x-gzip", max_bytes=10) == b"ab"


def test_gzip_bomb_is_stopped_at_the_limit():
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000

    with pytest.raises(BodyTooLarge):
        maybe_gunzip(bomb, "gzip", max_bytes=1_000_000)


def test_concatenated_members_count_towards_the_limit():
    with pytest.raises(BodyTooLarge):
        maybe_gunzip(gzip.compress(b"x" * 600) * 2, "gzip", max_bytes=1000)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not gzip at all", "invalid gzip body"),
        (gzip.compress(b"hello world")[:-6], "truncated gzip body"),
    ],
)
def test_corrupt_gzip(body, error):
    with pytest.raises(OtlpDecodeError, match=error):
        maybe_gunzip(body, "gzip", max_bytes=1000)


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
def test_unsupported_content_encoding(encoding):
    with pytest.raises(UnsupportedMediaType, match="Content-Encoding"):
        maybe_gunzip(b"x", encoding, max_bytes=10)


# --- arbitrary input ----------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
otlp_keys = st.sampled_from(
    [
        "resourceSpans",
        "scopeSpans",
        "spans",
        "resource",
        "scope",
        "attributes",
        "key",
        "value",
        "stringValue",
        "intValue",
        "doubleValue",
        "arrayValue",
        "kvlistValue",
        "values",
        "traceId",
        "spanId",
        "startTimeUnixNano",
        "status",
        "code",
        "events",
        "links",
        "name",
        "kind",
    ]
)
json_documents = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(otlp_keys, children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_documents)
def test_arbitrary_json_raises_only_decode_errors(document):
    try:
        result = decode_otlp(json.dumps(document).encode(), content_type=JSON, limits=LIMITS)
    except (OtlpDecodeError, SchemaError):
        return
    assert result.rejected == len(result.errors)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_errors(raw):
    for content_type in (JSON, "application/x-protobuf"):
        with contextlib.suppress(OtlpDecodeError, SchemaError):
            decode_otlp(raw, content_type=content_type, limits=LIMITS)
