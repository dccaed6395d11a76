"""POST /v1/traces/batch: all, some or none accepted; limits; exact field paths of errors."""

from __future__ import annotations

import gzip

import pytest

from apps.traces.models import IngestBatch, Span
from tests.integration.ingest.helpers import auth, encode, error_of, post, span

pytestmark = pytest.mark.django_db

BATCH = "/v1/traces/batch"


def stored_ids() -> set[str]:
    return set(Span.objects.values_list("span_id", flat=True))


def test_all_accepted_is_202(client, key, routed, django_capture_on_commit_callbacks):
    spans = [span(id="b-1", model="gpt-4o"), span(id="b-2", parent_id="b-1"), span(id="b-3")]
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, BATCH, {"traces": spans}, key)

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": ["b-1", "b-2", "b-3"], "errors": []}
    assert stored_ids() == {"b-1", "b-2", "b-3"}
    batch = IngestBatch.objects.get()
    assert (batch.source, batch.span_count) == ("batch", 3)
    assert routed == [batch.pk]


def test_some_rejected_is_207_with_per_item_errors(client, key):
    traces = [
        span(id="ok-0"),
        {"id": 5},
        span(id="ok-2"),
        {"id": "bad-3", "metrics": {"latency_ms": "slow"}},
        "not a span",
        {"id": "bad-5", "response": {"usage": {"completion_tokens": False}}},
    ]
    response = post(client, BATCH, {"traces": traces}, key)

    assert response.status_code == 207, response.content
    body = response.json()
    assert body["accepted"] == ["ok-0", "ok-2"]
    assert body["errors"] == [
        {"index": 1, "message": "Expected `str`, got `int`", "field": "traces[1].id"},
        {
            "index": 3,
            "message": "Expected `float | null`, got `str`",
            "field": "traces[3].metrics.latency_ms",
        },
        {"index": 4, "message": "Expected `object`, got `str`", "field": "traces[4]"},
        {
            "index": 5,
            "message": "Expected `int | null`, got `bool`",
            "field": "traces[5].response.usage.completion_tokens",
        },
    ]
    assert stored_ids() == {"ok-0", "ok-2"}


def test_none_valid_is_400_with_every_error_and_nothing_stored(client, key):
    response = post(client, BATCH, {"traces": [{"name": "no id"}, {"id": "x", "kind": "robot"}]}, key)
    error = error_of(response, 400, "invalid_request")
    assert error["message"] == "no span accepted: 2 rejected"
    errors = error["details"]["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(0, "traces[0].id"), (1, "traces[1].kind")]
    assert errors[0]["message"] == "Object missing required field `id`"
    assert not Span.objects.exists()
    assert not IngestBatch.objects.exists()


def test_empty_traces_is_400(client, key):
    error = error_of(post(client, BATCH, {"traces": []}, key), 400, "invalid_request")
    assert error["message"] == "no span accepted: 0 rejected"


@pytest.mark.parametrize(
    "body", [{}, {"traces": {"id": "a"}}, {"spans": [{"id": "a"}]}, [{"id": "a"}], {"traces": None}]
)
def test_body_without_a_traces_array_is_400(client, key, body):
    error = error_of(post(client, BATCH, body, key), 400, "invalid_request")
    assert error["message"] == "the body must be a JSON object with a `traces` array"


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"name": "x"}, "traces[1].id", "Object missing required field `id`"),
        ({"id": "x", "start_time": "2025-13-45"}, "traces[1].start_time", None),
        ({"id": "x", "metrics": {"estimated_cost": "0.1"}}, "traces[1].metrics.estimated_cost", None),
        ({"id": "x", "metrics": {"latency_ms": True}}, "traces[1].metrics.latency_ms", None),
        (
            {"id": "x", "response": {"usage": {"total_tokens": "3"}}},
            "traces[1].response.usage.total_tokens",
            None,
        ),
        (
            {"id": "x", "response": {"usage": {"total_tokens": -3}}},
            "traces[1].response.usage.total_tokens",
            None,
        ),
        (
            {"id": "x", "request": {"prompt": ["a"]}},
            "traces[1].request.prompt",
            "Expected `str | null`, got `array`",
        ),
        ({"id": "x", "error": "boom"}, "traces[1].error", "Expected `object | null`, got `str`"),
        ({"id": "x", "attributes": []}, "traces[1].attributes", "Expected `object`, got `array`"),
        ({"id": "x", "metadata": {"tags": ["a"]}}, "traces[1].metadata.tags", None),
        ({"id": "x", "name": "n" * 1025}, "traces[1].name", "string is longer than 1024 characters"),
        ({"id": "i" * 1025}, "traces[1].id", "string is longer than 1024 characters"),
        (
            {"id": "x", "metadata": {"tags": {"t": "v" * 1025}}},
            "traces[1].metadata.tags.t",
            "string is longer than 1024 characters",
        ),
    ],
)
def test_invalid_item_names_its_exact_field(client, key, item, field, message):
    response = post(client, BATCH, {"traces": [span(id="good"), item]}, key)
    assert response.status_code == 207, response.content
    (error,) = response.json()["errors"]
    assert error["index"] == 1
    assert error["field"] == field
    if message is not None:
        assert error["message"] == message
    assert stored_ids() == {"good"}


def test_oversize_free_text_names_its_field(client, key, limits):
    limits.UNTRACE_MAX_STRING_LENGTH = 100
    traces = [
        span(id="fits", response={"content": "c" * 100}),
        span(response={"content": "c" * 101}),
        span(request={"messages": [{"role": "user", "content": "m" * 101}]}),
        span(metadata={"notes": {"long": "x" * 101}}),
        span(error={"type": "E", "message": "e" * 101}),
    ]
    body = post(client, BATCH, {"traces": traces}, key).json()
    assert body["accepted"] == ["fits"]
    assert [(e["field"], e["message"]) for e in body["errors"]] == [
        ("traces[1].response.content", "string is longer than 100 characters"),
        ("traces[2].request.messages[0].content", "string is longer than 100 characters"),
        ("traces[3].metadata.notes.long", "string is longer than 100 characters"),
        ("traces[4].error.message", "string is longer than 100 characters"),
    ]


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_too_deep_nesting_names_the_path(client, key):
    # the span is level 1 and metadata level 2: 31 more levels pass, 32 are too deep
    traces = [span(id="deep-ok", metadata=_nested(30)), span(metadata=_nested(31))]
    body = post(client, BATCH, {"traces": traces}, key).json()
    assert body["accepted"] == ["deep-ok"]
    (error,) = body["errors"]
    assert error["field"] == "traces[1].metadata" + ".a" * 31
    assert error["message"] == "nesting is deeper than 32 levels"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (BATCH, b'{"traces": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"),
        ("/v1/traces", b'{"id": "a", "metadata": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001),
    ],
)
def test_absurdly_deep_json_is_400_not_500(client, key, path, body):
    error = error_of(post(client, path, body, key), 400, "invalid_json")
    assert error["message"] == "invalid JSON: nesting is too deep"
    assert not Span.objects.exists()


def test_duplicate_ids_in_one_request_keep_the_first(client, key):
    traces = [span(id="dup", name="first"), span(id="other"), span(id="dup", name="second")]
    response = post(client, BATCH, {"traces": traces}, key)
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": ["dup", "other"], "errors": []}
    assert Span.objects.get(span_id="dup").name == "first"
    assert Span.objects.count() == 2


def test_resent_batch_is_a_no_op_and_reports_the_ids(client, key):
    traces = [span(id="r-1"), span(id="r-2")]
    assert post(client, BATCH, {"traces": traces}, key).status_code == 202
    again = post(client, BATCH, {"traces": [*traces, span(id="r-3")]}, key)
    assert again.status_code == 202
    assert again.json()["accepted"] == ["r-1", "r-2", "r-3"]
    assert Span.objects.count() == 3
    assert list(IngestBatch.objects.order_by("created_at").values_list("span_count", flat=True)) == [2, 1]


def test_a_large_batch_takes_the_copy_path(client, key):
    traces = [
        span(
            id=f"many-{i}",
            model="gpt-4o-mini",
            response={"usage": {"prompt_tokens": i, "completion_tokens": 1}},
        )
        for i in range(120)
    ]
    response = post(client, BATCH, {"traces": traces}, key)
    assert response.status_code == 202
    assert len(response.json()["accepted"]) == 120
    assert Span.objects.count() == 120
    assert Span.objects.get(span_id="many-119").total_tokens == 120


def test_1000_items_are_allowed_and_1001_are_413(client, key):
    ok = post(client, BATCH, {"traces": [{"id": f"k-{i}"} for i in range(1000)]}, key)
    assert ok.status_code == 202, ok.content[:300]
    assert Span.objects.count() == 1000

    error = error_of(
        post(client, BATCH, {"traces": [{"id": f"n-{i}"} for i in range(1001)]}, key),
        413,
        "payload_too_large",
    )
    assert error["message"] == "`traces` has 1001 items; at most 1000 are allowed per request"
    assert Span.objects.count() == 1000


def test_body_over_the_limit_is_413(client, key, limits):
    limits.UNTRACE_MAX_BODY_BYTES = 1000
    filler = {"traces": [span(id="fill", name="")]}
    base = len(encode(filler))
    exact = {"traces": [span(id="fill", name="n" * (1000 - base))]}
    assert len(encode(exact)) == 1000
    assert post(client, BATCH, exact, key).status_code == 202

    over = {"traces": [span(id="over", name="n" * (1001 - base))]}
    error = error_of(post(client, BATCH, over, key), 413, "payload_too_large")
    assert error["message"] == "the request body is larger than 1000 bytes"
    error = error_of(
        post(client, "/v1/traces", {"id": "over", "name": "n" * 1000}, key), 413, "payload_too_large"
    )
    assert not Span.objects.filter(span_id="over").exists()


def test_gzip_bomb_is_413(client, key, limits):
    limits.UNTRACE_MAX_BODY_BYTES = 10_000
    body = gzip.compress(encode({"traces": [span(name="n" * 50_000)]}))
    assert len(body) < 10_000
    response = client.post(
        BATCH, body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **auth(key)
    )
    error = error_of(response, 413, "payload_too_large")
    assert error["message"] == "the request body is larger than 10000 bytes"


def test_real_body_over_10_mib_is_413(client, key, settings):
    limit = settings.UNTRACE_MAX_BODY_BYTES
    assert limit == 10 * 1024 * 1024
    body = b'{"traces": [{"id": "big", "name": "' + b"n" * limit + b'"}]}'
    error = error_of(post(client, BATCH, body, key), 413, "payload_too_large")
    assert error["message"] == f"the request body is larger than {limit} bytes"
    assert not Span.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", "application/xml"])
def test_non_json_content_type_is_415(client, key, content_type):
    response = post(client, BATCH, {"traces": [span()]}, key, content_type=content_type)
    error = error_of(response, 415, "unsupported_media_type")
    assert error["message"].startswith("Content-Type must be application/json, not ")
    assert not Span.objects.exists()


@pytest.mark.parametrize(
    ("body", "position", "line", "column"),
    [
        (b'{"traces": [\n  {"id": "a",]}', 26, 2, 14),
        (b'{"traces": [', 12, 1, 13),
        (b'{"traces": [{"id": "a"}]} trailing', 27, 1, 28),
        (b'{"traces": [{"id": "a"}\n\n{"id": "b"}]}', 25, 3, 1),
    ],
)
def test_invalid_json_is_400_with_position_line_and_column(client, key, body, position, line, column):
    error = error_of(post(client, BATCH, body, key), 400, "invalid_json")
    assert error["details"] == {"position": position, "line": line, "column": column}
    assert error["message"].startswith(f"invalid JSON at line {line}, column {column} (byte {position}): ")


def test_empty_body_is_invalid_json(client, key):
    # the test client leaves out Content-Type for an empty body unless told
    response = client.post(
        BATCH, b"", content_type="application/json", CONTENT_TYPE="application/json", **auth(key)
    )
    error = error_of(response, 400, "invalid_json")
    assert error["details"] == {"position": 0, "line": 1, "column": 1}


@pytest.mark.parametrize(
    ("body", "position"),
    [
        (b'{"id": "\xff"}', 8),
        (b'{"id": "a", "name": "caf\xc3"}', 24),
        (b'{"id": "a",\n "attributes": {"k\xfe": 1}}', 30),
        (b'{"id": "\xed\xa0\x80"}', 8),  # an encoded UTF-16 surrogate is not UTF-8
    ],
)
def test_invalid_utf8_is_invalid_json_with_its_position(client, key, body, position):
    line = body.count(b"\n", 0, position) + 1
    column = position - (body.rfind(b"\n", 0, position) + 1) + 1
    message = f"invalid JSON at line {line}, column {column} (byte {position}): not valid UTF-8"

    error = error_of(post(client, "/v1/traces", body, key), 400, "invalid_json")
    assert error["details"] == {"position": position, "line": line, "column": column}
    assert error["message"] == message

    # in a batch, the item is rejected alone (its position is within the item)
    response = post(client, BATCH, b'{"traces": [{"id": "fine"}, ' + body + b"]}", key)
    assert response.status_code == 207, response.content
    assert response.json() == {
        "accepted": ["fine"],
        "errors": [{"index": 1, "message": message, "field": "traces[1]"}],
    }
    assert stored_ids() == {"fine"}


def test_get_is_405(client, key):
    error = error_of(client.get(BATCH, **auth(key)), 405, "method_not_allowed")
    assert error["message"] == 'Method "GET" not allowed.'


REFUSED = "the store refused this span: a value is out of range"


@pytest.mark.parametrize(
    "bad",
    [
        {"response": {"usage": {"prompt_tokens": 2**63, "completion_tokens": 1}}},  # past bigint
        {"metrics": {"estimated_cost": 1e300}},  # past numeric(20, 8)
        {
            "model": "gpt-4",
            "response": {"usage": {"prompt_tokens": 2**62, "completion_tokens": 1}},
        },  # its cost
        {"metadata": {"big": 2**70}},  # past what the JSON encoder takes
        {"attributes": {"nested": [{"n": -(2**65)}]}},
    ],
)
def test_a_value_the_store_cannot_hold_rejects_only_its_span(client, key, bad):
    response = post(
        client, BATCH, {"traces": [span(id="good-0"), span(id="bad", **bad), span(id="good-2")]}, key
    )
    assert response.status_code == 207, response.content
    assert response.json() == {
        "accepted": ["good-0", "good-2"],
        "errors": [{"index": 1, "message": REFUSED, "field": "traces[1]"}],
    }
    assert stored_ids() == {"good-0", "good-2"}


def test_store_refusals_merge_with_validation_errors_in_index_order(client, key):
    traces = [
        span(id="dup"),
        span(metadata={"big": 2**70}),
        {"id": 3},
        span(id="dup", name="second"),
        span(id="last"),
    ]
    body = post(client, BATCH, {"traces": traces}, key).json()
    assert body["accepted"] == ["dup", "last"]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "traces[1]"), (2, "traces[2].id")]
    assert Span.objects.get(span_id="dup").name is None


def test_a_large_batch_with_a_value_the_store_cannot_hold(client, key):
    traces = [span(id=f"big-{i}") for i in range(60)]
    traces[42]["metadata"] = {"big": 2**70}
    response = post(client, BATCH, {"traces": traces}, key)
    assert response.status_code == 207
    assert response.json()["errors"] == [{"index": 42, "message": REFUSED, "field": "traces[42]"}]
    assert len(stored_ids()) == 59


def test_nothing_the_store_can_hold_is_400(client, key):
    traces = [span(metadata={"big": 2**70}), span(metrics={"estimated_cost": 1e300})]
    error = error_of(post(client, BATCH, {"traces": traces}, key), 400, "invalid_request")
    assert error["message"] == "no span accepted: 2 rejected"
    assert error["details"]["errors"] == [
        {"index": 0, "message": REFUSED, "field": "traces[0]"},
        {"index": 1, "message": REFUSED, "field": "traces[1]"},
    ]
    error = error_of(post(client, BATCH, {"traces": traces[:1]}, key), 400, "invalid_request")
    assert error["details"] == {"errors": [{"index": 0, "message": REFUSED, "field": "traces[0]"}]}
    assert not Span.objects.exists()
    assert not IngestBatch.objects.exists()


def test_a_single_span_the_store_cannot_hold_is_400(client, key):
    response = post(client, "/v1/traces", span(metadata={"big": 2**70}), key)
    error = error_of(response, 400, "invalid_request")
    assert error["message"] == "the store refused the spans"
    assert not Span.objects.exists()
