import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.traces.schema import (
    SchemaError,
    SpanLimits,
    SpanValidationError,
    decode_batch,
    decode_single,
    decode_span,
    span_to_dict,
)

LIMITS = SpanLimits(max_items_per_batch=20, max_string_length=64, max_id_length=16, max_depth=6)
FIELDS = [
    "id",
    "trace_id",
    "parent_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "model",
    "request",
    "response",
    "metadata",
    "metrics",
    "error",
    "attributes",
    "usage",
    "prompt_tokens",
    "messages",
    "tags",
    "content",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["llm", "tool", "2025-01-15T10:00:00Z", "2025-13-45", "", "0"]),
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)
span_like = st.dictionaries(keys, json_values, max_size=10).map(
    lambda d: {"id": "x", **d} if "id" not in d else d
)
batch_like = st.one_of(
    json_values,
    st.fixed_dictionaries({"traces": st.lists(st.one_of(span_like, json_values), max_size=25)}),
)


def _encode(value) -> bytes:
    return json.dumps(value).encode()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(batch_like)
def test_decode_batch_raises_only_its_own_errors(value):
    try:
        result = decode_batch(_encode(value), limits=LIMITS)
    except SchemaError:
        return
    assert len(result.spans) + len(result.errors) == len(value["traces"])
    for span in result.spans:
        assert decode_single(_encode(span_to_dict(span)), limits=LIMITS) == span


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(span_like, json_values))
def test_decode_single_raises_only_its_own_errors_and_agrees_with_decode_span(value):
    try:
        from_bytes = decode_single(_encode(value), limits=LIMITS)
    except SpanValidationError:
        from_bytes = None
    except SchemaError:
        return
    try:
        from_dict = decode_span(value, limits=LIMITS) if isinstance(value, dict) else None
    except SpanValidationError:
        from_dict = None
    assert from_dict == from_bytes


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_its_own_errors(raw):
    for decode in (decode_batch, decode_single):
        with contextlib.suppress(SchemaError):
            decode(raw, limits=LIMITS)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(span_like, st.fixed_dictionaries({"traces": st.lists(span_like, max_size=3)})), st.data())
def test_truncated_or_corrupted_json_raises_only_its_own_errors(value, data):
    raw = _encode(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    junk = data.draw(st.sampled_from([b"", b",", b"]", b"}", b'"', b"x", b"{"]))
    corrupted = raw[:cut] + junk + raw[cut + 1 :]
    for decode in (decode_batch, decode_single):
        with contextlib.suppress(SchemaError):
            decode(corrupted, limits=LIMITS)
