"""GET /v1/traces: filters, cursor pagination, bad parameters, scopes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import ApiKeyFactory
from tests.integration.ingest.helpers import auth, error_of, listed_ids

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)  # 1736935200000 in epoch ms


def at(**delta: float) -> str:
    return (T0 + timedelta(**delta)).isoformat().replace("+00:00", "Z")


DATASET = [
    {
        "id": "s1",
        "trace_id": "t1",
        "model": "gpt-4o-mini",
        "start_time": at(),
        "end_time": at(seconds=1),
        "session_id": "sess-a",
        "user_id": "u-1",
        "request": {"prompt": "What is the capital of France?"},
        "response": {"content": "PARIS", "usage": {"prompt_tokens": 100, "completion_tokens": 50}},
        "metadata": {
            "environment": "production",
            "tags": {"team": "search", "tier": "gold", "url": "http://x"},
        },
    },
    {
        "id": "s3",
        "trace_id": "t1",
        "parent_id": "s1",
        "kind": "tool",
        "name": "search",
        "start_time": at(minutes=1),
        "metrics": {"latency_ms": 300},
        "request": {"messages": [{"role": "user", "content": "Weather in Berlin"}]},
        "metadata": {"environment": "production", "tags": {"team": "infra"}},
    },
    {
        "id": "s2",
        "trace_id": "t2",
        "model": "claude-3-5-haiku",
        "start_time": at(minutes=5),
        "end_time": at(minutes=5, seconds=2),
        "session_id": "sess-a",
        "user_id": "u-2",
        "response": {"content": "sorry", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}},
        "error": {"type": "RateLimit", "message": "429 from upstream"},
        "metadata": {"environment": "staging", "tags": {"team": "search"}},
    },
    {
        "id": "s4",
        "trace_id": "t3",
        "kind": "chain",
        "start_time": 1736985600000,  # 2025-01-16T00:00:00Z
        "user_id": "u-1",
    },
]


@pytest.fixture
def dataset(ingest):
    ingest(DATASET)


def test_documents_are_newest_first_and_complete(client, key, dataset):
    response = client.get("/v1/traces", **auth(key))
    assert response.status_code == 200
    body = response.json()
    assert (body["next"], body["previous"]) == (None, None)
    assert [doc["id"] for doc in body["results"]] == ["s4", "s2", "s3", "s1"]
    s2 = body["results"][1]
    assert s2["status"] == "error"
    assert s2["error"] == {"type": "RateLimit", "message": "429 from upstream"}
    assert (s2["provider"], s2["model"]) == ("anthropic", "claude-3-5-haiku")
    assert s2["metrics"]["latency_ms"] == 2000.0
    # (1000 * 0.80 + 100 * 4.00) / 1e6 USD
    assert s2["metrics"]["estimated_cost"] == pytest.approx(0.0012, abs=1e-12)
    assert body["results"][2]["parent_id"] == "s1"


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"start": "2025-01-15T10:01:00Z"}, ["s4", "s2", "s3"]),
        ({"start": "2025-01-15T11:01:00+01:00"}, ["s4", "s2", "s3"]),
        ({"start": "1736935260000"}, ["s4", "s2", "s3"]),
        ({"end": "2025-01-15T10:05:00Z"}, ["s3", "s1"]),
        ({"end": "1736935500000"}, ["s3", "s1"]),
        ({"start": "1736935200000", "end": "1736935260001"}, ["s3", "s1"]),
        ({"start": "2025-01-17T00:00:00Z"}, []),
        ({"model": "claude-3-5-haiku"}, ["s2"]),
        ({"model": "gpt-4o-mini"}, ["s1"]),
        ({"model": "gpt-4o"}, []),
        ({"provider": "openai"}, ["s1"]),
        ({"provider": "anthropic"}, ["s2"]),
        ({"kind": "tool"}, ["s3"]),
        ({"kind": "chain"}, ["s4"]),
        ({"kind": "llm"}, ["s2", "s1"]),
        ({"status": "error"}, ["s2"]),
        ({"status": "ok"}, ["s4", "s3", "s1"]),
        ({"session_id": "sess-a"}, ["s2", "s1"]),
        ({"user_id": "u-1"}, ["s4", "s1"]),
        ({"trace_id": "t1"}, ["s3", "s1"]),
        ({"environment": "production"}, ["s3", "s1"]),
        ({"environment": "staging"}, ["s2"]),
        ({"tag": "team:search"}, ["s2", "s1"]),
        ({"tag": ["team:search", "tier:gold"]}, ["s1"]),
        ({"tag": ["team:search", "team:infra"]}, []),
        ({"tag": "team:nope"}, []),
        ({"tag": "url:http://x"}, ["s1"]),  # the value holds a colon: split at the first
        ({"tag": "regex:("}, []),  # a tag key is never a lookup
        ({"tag": "isnull:true"}, []),
        ({"min_cost": "0.0001"}, ["s2"]),
        ({"min_cost": "0.000045"}, ["s2", "s1"]),  # (100 * 0.15 + 50 * 0.60) / 1e6, inclusive
        ({"max_cost": "0.0001"}, ["s1"]),
        ({"min_cost": "0", "max_cost": "0.000044"}, []),
        ({"min_latency_ms": "1000"}, ["s2", "s1"]),
        ({"max_latency_ms": "500"}, ["s3"]),
        ({"min_latency_ms": "300", "max_latency_ms": "1000"}, ["s3", "s1"]),
        ({"q": "paris"}, ["s1"]),
        ({"q": "capital OF"}, ["s1"]),
        ({"q": "berlin"}, ["s3"]),
        ({"q": "SORRY"}, ["s2"]),
        ({"q": "%"}, []),
        ({"root": "true"}, ["s4", "s2", "s1"]),
        ({"root": "false"}, ["s3"]),
        ({"model": "claude-3-5-haiku", "status": "ok"}, []),
        ({"user_id": "u-1", "kind": "llm"}, ["s1"]),
        ({"unknown_param": "ignored"}, ["s4", "s2", "s3", "s1"]),
    ],
)
def test_filters(client, key, dataset, params, ids):
    assert listed_ids(client, key, **params) == ids


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"status": "maybe"}, "status", 'status: "maybe" is not a valid choice.'),
        ({"kind": "robot"}, "kind", 'kind: "robot" is not a valid choice.'),
        ({"start": "garbage"}, "start", None),
        ({"end": "yesterday"}, "end", None),
        ({"start": ""}, "start", None),
        ({"start": "-1"}, "start", None),
        ({"start": "99999999999999999999"}, "start", "start: Datetime value out of range."),
        ({"end": "²"}, "end", None),
        ({"limit": "abc"}, "limit", "limit: must be an integer from 1 to 200"),
        ({"limit": "0"}, "limit", "limit: must be an integer from 1 to 200"),
        ({"limit": "-5"}, "limit", "limit: must be an integer from 1 to 200"),
        ({"limit": "201"}, "limit", "limit: must be an integer from 1 to 200"),
        ({"limit": ""}, "limit", "limit: must be an integer from 1 to 200"),
        ({"cursor": "garbage"}, "cursor", "cursor: invalid cursor"),
        ({"cursor": base64.b64encode(b"p=garbage").decode()}, "cursor", "cursor: invalid cursor"),
        ({"cursor": base64.b64encode(b"o=-5").decode()}, "cursor", "cursor: invalid cursor"),
        ({"tag": "novalue"}, "tag[0]", "tag[0]: This value does not match the required pattern."),
        ({"tag": ["a:b", ":v"]}, "tag[1]", None),
        ({"min_cost": "abc"}, "min_cost", "min_cost: A valid number is required."),
        ({"max_cost": "NaN"}, "max_cost", "max_cost: A valid number is required."),
        ({"min_latency_ms": "-1"}, "min_latency_ms", None),
        ({"max_latency_ms": "inf"}, "max_latency_ms", "max_latency_ms: A valid number is required."),
        ({"root": "maybe"}, "root", "root: Must be a valid boolean."),
        ({"q": "x" * 201}, "q", "q: Ensure this field has no more than 200 characters."),
        ({"model": "a\x00b"}, "model", "model: Null characters are not allowed."),
    ],
)
def test_bad_parameter_is_400_naming_it(client, key, params, field, message):
    error = error_of(client.get("/v1/traces", params, **auth(key)), 400, "invalid_request")
    assert error["details"]["field"] == field
    assert error["message"].startswith(f"{field}: ")
    if message is not None:
        assert error["message"] == message


def _walk(client, key, url, direction="next"):
    pages = []
    while url:
        response = client.get(url, **auth(key))
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append([doc["id"] for doc in body["results"]])
        url = body[direction]
        if url:
            parts = urlsplit(url)
            url = f"{parts.path}?{parts.query}"
    return pages, body


def test_cursor_pagination_walks_every_span_once_newest_first(client, key, ingest):
    # 25 spans, 5 of which share one start time: ties are ordered too
    spans = [{"id": f"p{i:02d}", "start_time": at(seconds=i)} for i in range(20)]
    spans += [{"id": f"tie{i}", "start_time": at(seconds=10)} for i in range(5)]
    ingest(spans)
    everything = listed_ids(client, key, limit=200)
    assert len(everything) == 25
    expected_start = sorted(spans, key=lambda s: s["start_time"], reverse=True)
    assert [s["start_time"] for s in expected_start] == [
        next(s for s in spans if s["id"] == i)["start_time"] for i in everything
    ]
    assert everything.index("tie4") < everything.index("tie0")  # same time: later insert first

    pages, last = _walk(client, key, "/v1/traces?limit=10")
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [i for page in pages for i in page] == everything
    assert last["next"] is None

    back, first = _walk(
        client, key, urlsplit(last["previous"]).path + "?" + urlsplit(last["previous"]).query, "previous"
    )
    assert [i for page in back for i in page] == [i for page in pages[:2][::-1] for i in page]
    assert first["previous"] is None


def test_filters_are_kept_across_pages(client, key, ingest):
    ingest(
        [
            {"id": f"m{i}", "model": "gpt-4o" if i % 2 else "gpt-4o-mini", "start_time": at(seconds=i)}
            for i in range(12)
        ]
    )
    pages, _ = _walk(client, key, "/v1/traces?model=gpt-4o&limit=4")
    assert pages == [["m11", "m9", "m7", "m5"], ["m3", "m1"]]


def test_default_page_size_is_50(client, key, ingest):
    ingest([{"id": f"d{i}", "start_time": at(seconds=i)} for i in range(51)])
    body = client.get("/v1/traces", **auth(key)).json()
    assert len(body["results"]) == 50
    assert body["next"] is not None


def test_read_scope_is_needed(client, project, dataset):
    ingest_only = ApiKeyFactory(project=project, scopes=["ingest"]).secret
    for path in ("/v1/traces", "/v1/traces/t1", "/v1/traces/aggregate"):
        error = error_of(client.get(path, **auth(ingest_only)), 403, "missing_scope")
        assert error["message"] == "This API key lacks the 'read' scope."
    reader = ApiKeyFactory(project=project, scopes=["read"]).secret
    assert listed_ids(client, reader) == ["s4", "s2", "s3", "s1"]


def test_key_is_needed(client, db):
    error_of(client.get("/v1/traces"), 401, "unauthenticated")
    error_of(client.get("/v1/traces", HTTP_X_UNTRACE_KEY="nonsense"), 401, "invalid_key")
    error_of(client.get("/v1/traces/t1", HTTP_AUTHORIZATION="Bearer nonsense"), 401, "invalid_key")


PARAMS = [
    "start", "end", "model", "provider", "kind", "status", "session_id", "user_id", "trace_id", "environment",
    "tag", "min_cost", "max_cost", "min_latency_ms", "max_latency_ms", "q", "root", "limit", "cursor",
    "group_by",
]  # fmt: skip
param_values = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["true", "2025-01-15T10:00:00Z", "a:b", "::", "regex:(", "99999999999999999999", "cD0x"]),
    st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(PARAMS), st.lists(param_values, min_size=1, max_size=2), max_size=4
    )
)
def test_no_query_parameter_makes_a_500(client, key, params):
    for path in ("/v1/traces", "/v1/traces/aggregate"):
        response = client.get(path, params, **auth(key))
        assert response.status_code in (200, 400), (path, params, response.content[:300])
        if response.status_code == 400:
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert error["details"]["field"].split("[")[0] in PARAMS
