import json
from datetime import UTC, datetime

import pytest

from apps.traces.schema import (
    BodyTooLarge,
    InvalidBody,
    InvalidJSON,
    Span,
    SpanLimits,
    SpanValidationError,
    TooManyItems,
    decode_batch,
    decode_single,
    decode_span,
    span_to_dict,
    span_to_json,
)

LIMITS = SpanLimits()


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def batch_errors(*items, limits=LIMITS):
    result = decode_batch(body({"traces": list(items)}), limits=limits)
    return result.errors


def single_error(item, limits=LIMITS) -> SpanValidationError:
    with pytest.raises(SpanValidationError) as info:
        decode_single(body(item), limits=limits)
    return info.value


FULL = {
    "id": "span-1",
    "trace_id": "trace-1",
    "parent_id": "span-0",
    "session_id": "sess-1",
    "user_id": "user-1",
    "name": "chat",
    "kind": "llm",
    "start_time": "2025-01-15T10:00:00.250+01:00",
    "end_time": 1736931601500,
    "provider": "openai",
    "model": "gpt-4o-mini",
    "request": {
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": "hi",
        "parameters": {"temperature": 0.2, "max_tokens": 10},
    },
    "response": {
        "content": "hello",
        "messages": [{"role": "assistant", "content": "hello"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        "finish_reason": "stop",
    },
    "metadata": {"environment": "prod", "version": "1.0", "tags": {"team": "search"}, "customer": "c1"},
    "metrics": {
        "latency_ms": 1250.0,
        "time_to_first_token_ms": 100,
        "time_per_output_token_ms": 5.5,
        "tokens_per_second": 20,
        "estimated_cost": 0.0001,
    },
    "error": None,
}


# --- accepted spans ---------------------------------------------------------------------


def test_full_span_round_trips_with_utc_times():
    span = decode_single(body(FULL), limits=LIMITS)

    assert span.start_time == datetime(2025, 1, 15, 9, 0, 0, 250000, tzinfo=UTC)
    assert span.end_time == datetime(2025, 1, 15, 9, 0, 1, 500000, tzinfo=UTC)
    assert span.response.usage.total_tokens == 4
    assert span.metadata["tags"] == {"team": "search"}
    assert span.metrics.time_to_first_token_ms == 100.0
    out = span_to_dict(span)
    assert out["start_time"] == "2025-01-15T09:00:00.250000Z"
    assert out["end_time"] == "2025-01-15T09:00:01.500000Z"
    assert "error" not in out and "attributes" not in out
    expected = {k: v for k, v in FULL.items() if k not in ("start_time", "end_time", "error")}
    assert {k: v for k, v in out.items() if k not in ("start_time", "end_time", "metrics")} == {
        k: v for k, v in expected.items() if k != "metrics"
    }
    assert json.loads(span_to_json(span)) == out


def test_minimal_span_gets_defaults():
    span = decode_single(b'{"id": "a"}', limits=LIMITS)

    assert span.trace_id == "a"
    assert span.kind == "llm"
    assert span.attributes == {}
    assert span_to_dict(span) == {"id": "a", "trace_id": "a", "kind": "llm"}


def test_time_without_offset_is_utc_and_epoch_ms_may_be_float():
    span = decode_single(
        body({"id": "a", "start_time": "2025-01-15T10:00:00", "end_time": 1736935200000.5}), limits=LIMITS
    )

    assert span.start_time == datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    assert span.end_time == datetime(2025, 1, 15, 10, 0, 0, 500, tzinfo=UTC)


def test_empty_parent_id_means_root():
    assert decode_single(b'{"id": "a", "parent_id": ""}', limits=LIMITS).parent_id is None


def test_decode_span_accepts_a_dict_without_mutating_it():
    item = {"id": "a", "foo": 1, "request": {"tools": [], "prompt": "p"}}
    snapshot = json.loads(json.dumps(item))

    span = decode_span(item, limits=LIMITS)

    assert item == snapshot
    assert span.attributes == {"foo": 1}
    assert span.request.extra == {"tools": []}


# --- unknown fields are kept ------------------------------------------------------------


def test_unknown_top_level_fields_land_in_attributes():
    span = decode_single(
        body({"id": "a", "cost": 1.5, "input": {"q": "x"}, "attributes": {"k": "v"}}), limits=LIMITS
    )

    assert span.attributes == {"cost": 1.5, "input": {"q": "x"}, "k": "v"}
    assert span_to_dict(span)["attributes"] == {"cost": 1.5, "input": {"q": "x"}, "k": "v"}


def test_explicit_attribute_wins_over_a_top_level_field_of_the_same_name():
    span = decode_single(body({"id": "a", "k": "top", "attributes": {"k": "explicit"}}), limits=LIMITS)

    assert span.attributes == {"k": "explicit"}


@pytest.mark.parametrize("source", ["bytes", "dict"])
def test_unknown_nested_keys_are_kept_and_written_back_inline(source):
    item = {
        "id": "a",
        "request": {"prompt": "p", "tools": [{"name": "t"}], "extra": 1},
        "response": {"content": "c", "id": "resp-1", "usage": {"prompt_tokens": 1, "cached_tokens": 7}},
        "metrics": {"latency_ms": 1, "queue_ms": 2},
        "error": {"type": "Timeout", "message": "slow", "code": 504},
        "metadata": {"anything": {"goes": [1, 2]}},
    }
    raw = body(item) if source == "bytes" else item
    span = decode_span(raw, limits=LIMITS)

    assert span.request.extra == {"tools": [{"name": "t"}], "extra": 1}
    assert span.response.extra == {"id": "resp-1"}
    assert span.response.usage.extra == {"cached_tokens": 7}
    assert span.metrics.extra == {"queue_ms": 2}
    assert span.error.extra == {"code": 504}
    out = span_to_dict(span)
    assert out["request"] == {"prompt": "p", "tools": [{"name": "t"}], "extra": 1}
    assert out["response"] == {
        "content": "c",
        "id": "resp-1",
        "usage": {"prompt_tokens": 1, "cached_tokens": 7},
    }
    assert out["metrics"] == {"latency_ms": 1.0, "queue_ms": 2}
    assert out["error"] == {"type": "Timeout", "message": "slow", "code": 504}
    assert out["metadata"] == {"anything": {"goes": [1, 2]}}
    assert decode_span(out, limits=LIMITS) == span


# --- rejected items: field path and message ---------------------------------------------


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"name": "x"}, "id", "Object missing required field `id`"),
        ({"id": ""}, "id", "Expected `str` of length >= 1"),
        ({"id": 7}, "id", "Expected `str`, got `int`"),
        ({"id": "a", "kind": "LLM"}, "kind", "Invalid enum value 'LLM'"),
        ({"id": "a", "start_time": "yesterday"}, "start_time", "Invalid RFC3339 encoded datetime"),
        ({"id": "a", "start_time": True}, "start_time", "Expected `float | datetime | null`, got `bool`"),
        (
            {"id": "a", "response": {"usage": {"prompt_tokens": "3"}}},
            "response.usage.prompt_tokens",
            "Expected `int | null`, got `str`",
        ),
        (
            {"id": "a", "response": {"usage": {"prompt_tokens": True}}},
            "response.usage.prompt_tokens",
            "Expected `int | null`, got `bool`",
        ),
        (
            {"id": "a", "response": {"usage": {"completion_tokens": 1.5}}},
            "response.usage.completion_tokens",
            "Expected `int | null`, got `float`",
        ),
        (
            {"id": "a", "response": {"usage": {"total_tokens": -1}}},
            "response.usage.total_tokens",
            "Expected `int` >= 0",
        ),
        (
            {"id": "a", "metrics": {"latency_ms": False}},
            "metrics.latency_ms",
            "Expected `float | null`, got `bool`",
        ),
        (
            {"id": "a", "metrics": {"estimated_cost": "0.1"}},
            "metrics.estimated_cost",
            "Expected `float | null`, got `str`",
        ),
        (
            {"id": "a", "request": {"messages": {}}},
            "request.messages",
            "Expected `array | null`, got `object`",
        ),
        ({"id": "a", "request": {"messages": ["hi"]}}, "request.messages[0]", "Expected `object`, got `str`"),
        ({"id": "a", "request": "hi"}, "request", "Expected `object | null`, got `str`"),
        ({"id": "a", "error": {"type": "E"}}, "error.message", "Object missing required field `message`"),
        ({"id": "a", "metadata": {"tags": {"team": 1}}}, "metadata.tags.team", "Expected `str`, got `int`"),
        ({"id": "a", "metadata": {"tags": ["a"]}}, "metadata.tags", "Expected `object | null`, got `array`"),
        (
            {"id": "a", "metadata": {"environment": 1}},
            "metadata.environment",
            "Expected `str | null`, got `int`",
        ),
        ({"id": "a", "attributes": []}, "attributes", "Expected `object`, got `array`"),
        ({"id": "a", "x": 1, "attributes": "no"}, "attributes", "Expected `object`, got `str`"),
        (
            {"id": "a", "start_time": 1736935200000, "end_time": 1736935100000},
            "end_time",
            "end_time is before start_time",
        ),
        ({"id": "a", "start_time": 1e300}, "start_time", "timestamp out of range"),
        ({"id": "a", "end_time": "0001-01-01T00:00:00+01:00"}, "end_time", "timestamp out of range"),
    ],
)
def test_invalid_item_is_rejected_with_its_field_path(item, field, message):
    error = single_error(item)
    assert (error.field_path, error.message) == (field, message)

    noisy = {**item, "unknown_key": 1} if isinstance(item, dict) else item
    assert batch_errors({"id": "ok"}, noisy) == [
        {"index": 1, "message": message, "field": f"traces[1].{field}"}
    ]


def test_number_out_of_range_is_rejected_with_its_field_path():
    raw = b'{"id": "a", "response": {"usage": {"prompt_tokens": 1e400}}}'
    with pytest.raises(SpanValidationError) as info:
        decode_single(raw, limits=LIMITS)
    assert (info.value.field_path, info.value.message) == (
        "response.usage.prompt_tokens",
        "Number out of range",
    )

    result = decode_batch(b'{"traces": [{"id": "a", "x": 1e400}]}', limits=LIMITS)
    assert result.errors == [{"index": 0, "message": "Number out of range", "field": "traces[0].x"}]


def test_non_object_item_is_rejected_at_its_index():
    assert batch_errors({"id": "ok"}, [1], "x") == [
        {"index": 1, "message": "Expected `object`, got `array`", "field": "traces[1]"},
        {"index": 2, "message": "Expected `object`, got `str`", "field": "traces[2]"},
    ]


def test_invalid_items_never_abort_the_batch():
    result = decode_batch(
        body({"traces": [{"id": "a"}, {"id": 1}, {"id": "c"}, {"kind": "tool"}]}), limits=LIMITS
    )

    assert [span.id for span in result.spans] == ["a", "c"]
    assert result.indexes == [0, 2]
    assert [error["index"] for error in result.errors] == [1, 3]


# --- limits -----------------------------------------------------------------------------

SMALL = SpanLimits(max_string_length=20, max_id_length=8, max_depth=5, max_attributes=2, max_tags=2)


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"id": "123456789"}, "id", "string is longer than 8 characters"),
        ({"id": "a", "model": "x" * 9}, "model", "string is longer than 8 characters"),
        (
            {"id": "a", "request": {"prompt": "x" * 21}},
            "request.prompt",
            "string is longer than 20 characters",
        ),
        (
            {"id": "a", "response": {"content": "x" * 21}},
            "response.content",
            "string is longer than 20 characters",
        ),
        (
            {"id": "a", "request": {"messages": [{"role": "user", "content": "x" * 21}]}},
            "request.messages[0].content",
            "string is longer than 20 characters",
        ),
        ({"id": "a", "metadata": {"note": "x" * 21}}, "metadata.note", "string is longer than 20 characters"),
        ({"id": "a", "blob": "x" * 21}, "attributes.blob", "string is longer than 20 characters"),
        (
            {"id": "a", "metadata": {"tags": {"t": "x" * 9}}},
            "metadata.tags.t",
            "string is longer than 8 characters",
        ),
        (
            {"id": "a", "metadata": {"tags": {"a": "1", "b": "2", "c": "3"}}},
            "metadata.tags",
            "too many tags (3 > 2)",
        ),
        ({"id": "a", "x": 1, "y": 2, "z": 3}, "attributes", "too many attributes (3 > 2)"),
        (
            {"id": "a", "attributes": {"123456789": 1}},
            "attributes.123456789",
            "string is longer than 8 characters",
        ),
        (
            {"id": "a", "request": {"messages": [{"content": [[1]]}]}},
            "request.messages[0].content[0]",
            "nesting is deeper than 5 levels",
        ),
        (
            {"id": "a", "deep": {"a": {"b": {"c": {}}}}},
            "attributes.deep.a.b.c",
            "nesting is deeper than 5 levels",
        ),
    ],
)
def test_limits_are_enforced(item, field, message):
    error = single_error(item, limits=SMALL)
    assert (error.field_path, error.message) == (field, message)
    assert decode_span(item, limits=LIMITS).id  # within the default limits


def test_nesting_at_the_limit_is_accepted():
    item = {"id": "a", "request": {"messages": [{"content": [1]}]}}  # span, request, messages, [0], content
    assert decode_single(body(item), limits=SMALL).request.messages == [{"content": [1]}]


def test_too_many_items():
    with pytest.raises(TooManyItems) as info:
        decode_batch(
            body({"traces": [{"id": str(i)} for i in range(4)]}), limits=SpanLimits(max_items_per_batch=3)
        )
    assert info.value.message == "`traces` has 4 items; at most 3 are allowed per request"


def test_body_too_large():
    with pytest.raises(BodyTooLarge):
        decode_batch(body({"traces": []}), limits=SpanLimits(max_body_bytes=10))
    with pytest.raises(BodyTooLarge):
        decode_single(body({"id": "abcdefgh"}), limits=SpanLimits(max_body_bytes=10))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_limits_must_be_positive_ints(bad):
    with pytest.raises(ValueError, match="max_depth"):
        SpanLimits(max_depth=bad)


# --- whole-body errors ------------------------------------------------------------------


def test_invalid_json_reports_the_position():
    with pytest.raises(InvalidJSON) as info:
        decode_batch(b'{\n  "traces": [\n    {"id": x}\n  ]\n}', limits=LIMITS)
    error = info.value
    assert (error.line, error.column, error.position) == (3, 12, 27)
    assert error.message == "invalid JSON at line 3, column 12 (byte 27): invalid character"


def test_truncated_json_points_at_the_end():
    with pytest.raises(InvalidJSON) as info:
        decode_single(b'{"id": "a"', limits=LIMITS)
    assert info.value.message == "invalid JSON at line 1, column 11 (byte 10): Input data was truncated"


def test_trailing_characters_are_invalid_json():
    with pytest.raises(
        InvalidJSON, match=r"invalid JSON at line 1, column \d+ \(byte \d+\): trailing characters"
    ):
        decode_single(b'{"id": "a"} x', limits=LIMITS)


@pytest.mark.parametrize(
    "raw",
    [b'{"x": 1, "id": ', b'{"request": {"x": 1}, "id": ', b'{"x": 1, "id": "a"} [', b'{"x": 1, "id": "a",}'],
)
def test_syntax_error_after_an_unknown_field(raw):
    with pytest.raises(InvalidJSON):
        decode_single(raw, limits=LIMITS)


def test_very_deep_json_after_an_unknown_field_is_refused_cleanly():
    raw = b'{"x": 1, "y": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidJSON, match="nesting is too deep"):
        decode_single(raw, limits=LIMITS)


def test_syntax_error_wins_over_a_validation_error():
    with pytest.raises(InvalidJSON, match="line 2, column 1"):
        decode_single(b'{"id": 1,\n', limits=LIMITS)


def test_very_deep_json_is_refused_cleanly():
    deep = b'{"traces": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    with pytest.raises(InvalidJSON, match="nesting is too deep"):
        decode_batch(deep, limits=LIMITS)


@pytest.mark.parametrize("payload", [b"[]", b'{"spans": []}', b'{"traces": {}}', b'{"traces": null}', b"3"])
def test_body_must_have_a_traces_array(payload):
    with pytest.raises(InvalidBody, match="`traces` array"):
        decode_batch(payload, limits=LIMITS)


def test_single_body_must_be_an_object():
    error = single_error([{"id": "a"}])
    assert (error.field_path, error.message) == ("", "Expected `object`, got `array`")


def test_span_equality_after_round_trip_through_json():
    span = decode_single(body(FULL | {"extra_field": [1, {"a": None}]}), limits=LIMITS)
    again = decode_single(span_to_json(span), limits=LIMITS)
    assert again == span
    assert isinstance(again, Span)


def test_invalid_utf8_is_invalid_json_with_its_byte_position():
    with pytest.raises(InvalidJSON) as info:
        decode_single(b'{"id": "\xff"}', limits=LIMITS)
    assert (info.value.position, info.value.line, info.value.column) == (8, 1, 9)
    assert info.value.message == "invalid JSON at line 1, column 9 (byte 8): not valid UTF-8"

    result = decode_batch(b'{"traces": [{"id": "a\xff"}, {"id": "ok"}]}', limits=LIMITS)
    assert [span.id for span in result.spans] == ["ok"]
    assert result.errors == [
        {
            "index": 0,
            "message": "invalid JSON at line 1, column 10 (byte 9): not valid UTF-8",
            "field": "traces[0]",
        }
    ]
