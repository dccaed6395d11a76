"""GET /v1/traces/aggregate: totals and groups with counts, tokens, cost, error rate, latency percentiles."""

from __future__ import annotations

import pytest

from tests.integration.ingest.helpers import auth, error_of

pytestmark = pytest.mark.django_db


def _llm(span_id, model, start, latency, prompt, completion, *, error=False):
    span = {
        "id": span_id,
        "model": model,
        "start_time": start,
        "metrics": {"latency_ms": latency},
        "response": {"usage": {"prompt_tokens": prompt, "completion_tokens": completion}},
    }
    if error:
        span["error"] = {"type": "APIError", "message": "boom"}
    return span


# gpt-4o-mini: 5 spans, latencies 100..1000 ms, 10 + 5 tokens each, one error;
# each costs (10 * 0.15 + 5 * 0.60) / 1e6 = 0.0000045 USD
MINI = [
    _llm("m1", "gpt-4o-mini", "2025-01-15T10:00:00Z", 400, 10, 5),
    _llm("m2", "gpt-4o-mini", "2025-01-15T10:01:00Z", 100, 10, 5),
    _llm("m3", "gpt-4o-mini", "2025-01-15T10:02:00Z", 1000, 10, 5, error=True),
    _llm("m4", "gpt-4o-mini", "2025-01-15T10:03:00Z", 300, 10, 5),
    _llm("m5", "gpt-4o-mini", "2025-01-15T10:59:59Z", 200, 10, 5),
]
# claude-3-5-haiku: 2 spans, latencies 50 and 150 ms, 100 + 10 tokens each;
# each costs (100 * 0.80 + 10 * 4.00) / 1e6 = 0.00012 USD
HAIKU = [
    _llm("h1", "claude-3-5-haiku", "2025-01-15T11:30:00Z", 150, 100, 10),
    _llm("h2", "claude-3-5-haiku", "2025-01-15T11:45:00Z", 50, 100, 10),
]
# a tool span: no model, no tokens, no latency, an error
TOOL = [
    {"id": "t1", "kind": "tool", "start_time": "2025-01-16T09:00:00Z", "error": {"type": "E", "message": "x"}}
]


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont), by hand."""
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_hand_computed_percentiles():
    # [100, 200, 300, 400, 1000]: p50 is the middle; p95 sits 0.8 of the way from 400 to 1000
    assert percentile([400, 100, 1000, 300, 200], 0.5) == 300
    assert percentile([400, 100, 1000, 300, 200], 0.95) == pytest.approx(880)
    assert percentile([400, 100, 1000, 300, 200], 0.99) == pytest.approx(976)


LATENCIES_MINI = {"p50": 300.0, "p95": 880.0, "p99": 976.0}
LATENCIES_HAIKU = {"p50": 100.0, "p95": 145.0, "p99": 149.0}
# all seven: [50, 100, 150, 200, 300, 400, 1000]; p95 rank 5.7 -> 400 + 0.7 * 600
LATENCIES_ALL = {"p50": 200.0, "p95": 820.0, "p99": 964.0}
NO_LATENCY = {"p50": None, "p95": None, "p99": None}


def _row(count, errors, prompt, completion, cost, latency):
    return {
        "count": count,
        "error_rate": errors / count,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": pytest.approx(cost, abs=1e-12),
        "latency_ms": {k: (pytest.approx(v) if v is not None else None) for k, v in latency.items()},
    }


MINI_ROW = _row(5, 1, 50, 25, 5 * 0.0000045, LATENCIES_MINI)
HAIKU_ROW = _row(2, 0, 200, 20, 2 * 0.00012, LATENCIES_HAIKU)
TOOL_ROW = _row(1, 1, 0, 0, 0.0, NO_LATENCY)
TOTAL_ROW = _row(8, 2, 250, 45, 5 * 0.0000045 + 2 * 0.00012, LATENCIES_ALL)


@pytest.fixture
def dataset(ingest):
    ingest([*MINI, *HAIKU, *TOOL])


def aggregate(client, key, **params) -> dict:
    response = client.get("/v1/traces/aggregate", params, **auth(key))
    assert response.status_code == 200, response.content
    return response.json()


def test_percentiles_of_the_dataset_match_the_hand_computation():
    assert {
        f"p{int(p * 100)}": percentile([s["metrics"]["latency_ms"] for s in MINI], p)
        for p in (0.5, 0.95, 0.99)
    } == (pytest.approx(LATENCIES_MINI))
    assert {
        f"p{int(p * 100)}": percentile([s["metrics"]["latency_ms"] for s in MINI + HAIKU], p)
        for p in (0.5, 0.95, 0.99)
    } == pytest.approx(LATENCIES_ALL)


def test_totals(client, key, dataset):
    assert aggregate(client, key) == {"group_by": None, "totals": TOTAL_ROW}


@pytest.mark.parametrize(
    ("group_by", "groups"),
    [
        ("model", [("claude-3-5-haiku", HAIKU_ROW), ("gpt-4o-mini", MINI_ROW), (None, TOOL_ROW)]),
        ("provider", [("anthropic", HAIKU_ROW), ("openai", MINI_ROW), (None, TOOL_ROW)]),
        (
            "kind",
            [
                ("llm", _row(7, 1, 250, 45, 5 * 0.0000045 + 2 * 0.00012, LATENCIES_ALL)),
                ("tool", TOOL_ROW),
            ],
        ),
        (
            "status",
            [
                ("error", _row(2, 2, 10, 5, 0.0000045, {"p50": 1000.0, "p95": 1000.0, "p99": 1000.0})),
                (
                    "ok",
                    _row(
                        6, 0, 240, 40, 4 * 0.0000045 + 2 * 0.00012, {"p50": 175.0, "p95": 375.0, "p99": 395.0}
                    ),
                ),
            ],
        ),
        (
            "hour",
            [
                ("2025-01-15T10:00:00+00:00", MINI_ROW),
                ("2025-01-15T11:00:00+00:00", HAIKU_ROW),
                ("2025-01-16T09:00:00+00:00", TOOL_ROW),
            ],
        ),
        (
            "day",
            [
                (
                    "2025-01-15T00:00:00+00:00",
                    _row(7, 1, 250, 45, 5 * 0.0000045 + 2 * 0.00012, LATENCIES_ALL),
                ),
                ("2025-01-16T00:00:00+00:00", TOOL_ROW),
            ],
        ),
    ],
)
def test_group_by(client, key, dataset, group_by, groups):
    body = aggregate(client, key, group_by=group_by)
    assert body["group_by"] == group_by
    assert body["totals"] == TOTAL_ROW
    assert body["groups"] == [{"key": group, **row} for group, row in groups]


def test_ok_latencies_by_hand():
    ok = [400, 100, 300, 200, 150, 50]  # sorted [50, 100, 150, 200, 300, 400]; p95 rank 4.75
    assert (percentile(ok, 0.5), percentile(ok, 0.95), percentile(ok, 0.99)) == pytest.approx((175, 375, 395))


def test_filters_apply(client, key, dataset):
    body = aggregate(client, key, model="gpt-4o-mini", group_by="status")
    assert body["totals"] == MINI_ROW
    assert [group["key"] for group in body["groups"]] == ["error", "ok"]
    assert (
        aggregate(client, key, start="2025-01-15T11:00:00Z", end="2025-01-16T00:00:00Z")["totals"]
        == HAIKU_ROW
    )
    assert aggregate(client, key, min_latency_ms="1000")["totals"]["count"] == 1


def test_empty_project(client, key):
    assert aggregate(client, key, group_by="model") == {
        "group_by": "model",
        "totals": {
            "count": 0,
            "error_rate": 0.0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "cost": 0.0,
            "latency_ms": NO_LATENCY,
        },
        "groups": [],
    }


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"group_by": "week"}, "group_by", 'group_by: "week" is not a valid choice.'),
        ({"group_by": ""}, "group_by", None),
        ({"status": "maybe"}, "status", 'status: "maybe" is not a valid choice.'),
        ({"start": "garbage"}, "start", None),
        ({"tag": "novalue"}, "tag[0]", None),
    ],
)
def test_bad_parameter_is_400(client, key, params, field, message):
    error = error_of(client.get("/v1/traces/aggregate", params, **auth(key)), 400, "invalid_request")
    assert error["details"]["field"] == field
    if message is not None:
        assert error["message"] == message
