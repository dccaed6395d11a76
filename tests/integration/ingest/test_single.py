"""POST /v1/traces: one canonical span, durable and readable at once, accounting filled."""

from __future__ import annotations

from datetime import datetime

import pytest

from apps.traces.models import IngestBatch, Span
from tests.integration.ingest.helpers import auth, error_of, gzipped, listed, post, span

pytestmark = pytest.mark.django_db

FULL_SPAN = {
    "id": "span-full",
    "trace_id": "trace-full",
    "parent_id": None,
    "session_id": "session-1",
    "user_id": "user-1",
    "name": "chat",
    "kind": "llm",
    "start_time": "2025-01-15T10:00:00Z",
    "end_time": "2025-01-15T10:00:01.250Z",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "request": {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "parameters": {"temperature": 0.2, "max_tokens": 50},
    },
    "response": {
        "content": "Paris is the capital of France.",
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
        "finish_reason": "stop",
    },
    "metadata": {"environment": "production", "version": "1.2.3", "tags": {"team": "search"}},
    "error": None,
}


def test_one_span_is_accepted_and_readable_at_once(client, key):
    response = post(client, "/v1/traces", FULL_SPAN, key)

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 1, "ids": ["span-full"]}

    (doc,) = listed(client, key)
    received_at = datetime.fromisoformat(doc.pop("received_at"))
    assert received_at.tzinfo is not None
    assert doc == {
        "id": "span-full",
        "trace_id": "trace-full",
        "session_id": "session-1",
        "user_id": "user-1",
        "name": "chat",
        "kind": "llm",
        "start_time": "2025-01-15T10:00:00+00:00",
        "end_time": "2025-01-15T10:00:01.250000+00:00",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": "ok",
        "request": FULL_SPAN["request"],
        "response": FULL_SPAN["response"],
        "metadata": FULL_SPAN["metadata"],
        # (1000 * 0.15 + 500 * 0.60) / 1e6 USD, and end - start
        "metrics": {"estimated_cost": 0.00045, "latency_ms": 1250.0, "tokens_per_second": 400.0},
    }

    tree = client.get("/v1/traces/trace-full", **auth(key))
    assert tree.status_code == 200
    body = tree.json()
    assert [node["id"] for node in body["spans"]] == ["span-full"]
    assert body["spans"][0]["children"] == []
    assert body["totals"]["total_tokens"] == 1500


def test_the_stored_batch_is_handed_to_routing_after_commit(
    client, key, project, routed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, "/v1/traces", span(), key)
    assert response.status_code == 202
    assert len(callbacks) == 1
    batch = IngestBatch.objects.get()
    assert routed == [batch.pk]
    assert (batch.project_id, batch.source, batch.span_count) == (project.pk, "http", 1)
    assert list(Span.objects.values_list("batch_id", flat=True)) == [batch.pk]


def test_resending_the_same_id_is_a_no_op(client, key, routed, django_capture_on_commit_callbacks):
    first = span(id="same", name="first")
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, "/v1/traces", first, key).status_code == 202
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = post(client, "/v1/traces", {**first, "name": "changed"}, key)

    assert again.status_code == 202
    assert again.json() == {"accepted": 1, "ids": ["same"]}
    assert Span.objects.count() == 1
    assert [doc["name"] for doc in listed(client, key)] == ["first"]
    assert callbacks == []  # nothing new to route
    assert len(routed) == 1
    assert IngestBatch.objects.count() == 1


def _stored(client, key, body):
    response = post(client, "/v1/traces", body, key)
    assert response.status_code == 202, response.content
    (doc,) = [d for d in listed(client, key) if d["id"] == body["id"]]
    return doc


def test_accounting_fills_provider_tokens_cost_and_latency(client, key):
    doc = _stored(
        client,
        key,
        span(
            model="gpt-4o-mini",
            start_time=1736935200000,
            end_time=1736935200750,
            request={"prompt": "Hello, world!"},
            response={"content": "Hi there"},
        ),
    )
    assert doc["provider"] == "openai"
    # o200k_base: "Hello, world!" is 4 tokens, "Hi there" 2
    assert doc["response"]["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 2,
        "total_tokens": 6,
        "usage_estimated": True,
    }
    # (4 * 0.15 + 2 * 0.60) / 1e6 USD
    assert doc["metrics"]["estimated_cost"] == pytest.approx(0.0000018, abs=1e-12)
    assert doc["metrics"]["latency_ms"] == 750.0
    stored = Span.objects.get(span_id=doc["id"])
    assert (stored.prompt_tokens, stored.completion_tokens, stored.total_tokens) == (4, 2, 6)
    assert str(stored.cost) == "0.00000180"
    assert stored.latency_ms == 750.0


def test_accounting_never_overwrites_what_the_client_sent(client, key):
    doc = _stored(
        client,
        key,
        span(
            provider="openai",
            model="gpt-4o-mini",
            start_time="2025-01-15T10:00:00Z",
            end_time="2025-01-15T10:00:01Z",
            request={"prompt": "Hello, world!"},
            response={"content": "Hi there", "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
            metrics={"latency_ms": 999.5, "estimated_cost": 0.5},
        ),
    )
    assert doc["response"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert doc["metrics"]["latency_ms"] == 999.5
    assert doc["metrics"]["estimated_cost"] == 0.5
    stored = Span.objects.get(span_id=doc["id"])
    assert (stored.prompt_tokens, stored.completion_tokens, stored.total_tokens) == (10, 5, 15)
    assert (str(stored.cost), stored.latency_ms) == ("0.50000000", 999.5)


def test_a_span_of_an_unpriced_model_gets_tokens_but_no_cost(client, key):
    doc = _stored(
        client, key, span(model="my-own-model", request={"prompt": "hello"}, response={"content": "hello"})
    )
    assert "provider" not in doc
    assert doc["response"]["usage"]["total_tokens"] == 2
    assert "estimated_cost" not in (doc.get("metrics") or {})


def test_a_subnormal_latency_is_accepted(client, key):
    doc = _stored(client, key, span(response={"content": "hello"}, metrics={"latency_ms": 5e-324}))
    assert doc["metrics"]["latency_ms"] == 5e-324
    assert "tokens_per_second" not in doc["metrics"]


def test_unknown_fields_are_kept(client, key):
    doc = _stored(
        client,
        key,
        span(
            id="with-extras",
            custom_score=0.9,
            labels={"a": [1, 2]},
            collision="from top level",
            attributes={"collision": "explicit", "http.status": 200},
            request={"prompt": "p", "seed": 7},
            response={"content": "c", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cached": 0}},
            metrics={"latency_ms": 1, "queue_ms": 3},
        ),
    )
    assert doc["attributes"] == {
        "custom_score": 0.9,
        "labels": {"a": [1, 2]},
        "collision": "explicit",
        "http.status": 200,
    }
    assert doc["request"] == {"prompt": "p", "seed": 7}
    assert doc["response"]["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "cached": 0,
    }
    assert doc["metrics"]["queue_ms"] == 3


@pytest.mark.parametrize(
    ("start_time", "stored"),
    [
        ("2025-01-15T10:00:00Z", "2025-01-15T10:00:00+00:00"),
        ("2025-01-15T12:30:00.5+02:30", "2025-01-15T10:00:00.500000+00:00"),
        ("2025-01-15T10:00:00", "2025-01-15T10:00:00+00:00"),  # no offset: UTC
        (1736935200000, "2025-01-15T10:00:00+00:00"),
        (1736935200123.0, "2025-01-15T10:00:00.123000+00:00"),
    ],
)
def test_times_as_rfc3339_or_epoch_milliseconds(client, key, start_time, stored):
    doc = _stored(client, key, span(start_time=start_time))
    assert doc["start_time"] == stored


def test_a_span_without_start_time_starts_when_received(client, key):
    doc = _stored(client, key, span())
    assert doc["start_time"] == doc["received_at"]
    assert "end_time" not in doc


def test_gzip_body_is_accepted(client, key):
    body = span(id="zipped", model="gpt-4o-mini")
    response = client.post(
        "/v1/traces",
        gzipped(body),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
        **auth(key),
    )
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 1, "ids": ["zipped"]}
    assert Span.objects.filter(span_id="zipped").exists()


def test_bad_gzip_is_400_and_unknown_encoding_415(client, key):
    error = error_of(
        post(client, "/v1/traces", b"not gzip at all", key, HTTP_CONTENT_ENCODING="gzip"),
        400,
        "invalid_encoding",
    )
    assert error["message"].startswith("invalid gzip body")
    error = error_of(
        post(client, "/v1/traces", span(), key, HTTP_CONTENT_ENCODING="br"), 415, "unsupported_media_type"
    )
    assert error["message"] == "unsupported Content-Encoding 'br'"
    assert not Span.objects.exists()


def test_json_with_charset_is_json(client, key):
    response = post(client, "/v1/traces", span(), key, content_type="application/json; charset=utf-8")
    assert response.status_code == 202


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonl"]
)
def test_non_json_content_type_is_415(client, key, content_type):
    error = error_of(
        post(client, "/v1/traces", span(), key, content_type=content_type), 415, "unsupported_media_type"
    )
    assert error["message"] == f"Content-Type must be application/json, not {content_type!r}."
    assert not Span.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "x"}, "id", "Object missing required field `id`"),
        ({"id": ""}, "id", "Expected `str` of length >= 1"),
        ({"id": 7}, "id", "Expected `str`, got `int`"),
        ({"id": "a", "kind": "robot"}, "kind", None),
        ({"id": "a", "start_time": "yesterday"}, "start_time", None),
        ({"id": "a", "start_time": True}, "start_time", None),
        ({"id": "a", "metrics": {"latency_ms": "fast"}}, "metrics.latency_ms", None),
        ({"id": "a", "metrics": {"latency_ms": -1}}, "metrics.latency_ms", "Expected `float` >= 0.0"),
        ({"id": "a", "response": {"usage": {"prompt_tokens": True}}}, "response.usage.prompt_tokens", None),
        ({"id": "a", "response": {"usage": {"prompt_tokens": "12"}}}, "response.usage.prompt_tokens", None),
        ({"id": "a", "response": {"usage": {"prompt_tokens": 1.5}}}, "response.usage.prompt_tokens", None),
        ({"id": "a", "request": {"messages": "hi"}}, "request.messages", None),
        (
            {"id": "a", "error": {"type": "Timeout"}},
            "error.message",
            "Object missing required field `message`",
        ),
        ({"id": "a", "metadata": {"tags": {"team": 1}}}, "metadata.tags.team", "Expected `str`, got `int`"),
        (
            {"id": "a", "metadata": {"environment": 3}},
            "metadata.environment",
            "Expected `str | null`, got `int`",
        ),
        ({"id": "a", "model": "m" * 1025}, "model", "string is longer than 1024 characters"),
        (
            {"id": "a", "start_time": 1736935200000, "end_time": 1736935199999},
            "end_time",
            "end_time is before start_time",
        ),
    ],
)
def test_invalid_span_is_400_naming_the_field(client, key, body, field, message):
    error = error_of(post(client, "/v1/traces", body, key), 400, "invalid_request")
    assert error["details"] == {"field": field}
    assert error["message"].startswith(f"{field}: ")
    if message is not None:
        assert error["message"] == f"{field}: {message}"
    assert not Span.objects.exists()


@pytest.mark.parametrize("body", [b"[]", b'"span"', b"42", b"null"])
def test_a_body_that_is_not_an_object_is_400(client, key, body):
    error = error_of(post(client, "/v1/traces", body, key), 400, "invalid_request")
    assert error["details"] == {"field": None}


def test_invalid_json_is_400_with_its_position(client, key):
    error = error_of(post(client, "/v1/traces", b'{"id": "a",\n  "name": }', key), 400, "invalid_json")
    assert error["details"] == {"position": 22, "line": 2, "column": 11}
    assert error["message"].startswith("invalid JSON at line 2, column 11 (byte 22)")


def test_method_other_than_get_or_post(client, key):
    response = client.put("/v1/traces", b"{}", content_type="application/json", **auth(key))
    assert response.status_code == 405
