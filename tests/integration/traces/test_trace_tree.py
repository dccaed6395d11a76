"""GET /v1/traces/{trace_id}: the spans of a trace as a tree, with totals."""

from __future__ import annotations

import pytest

from tests.integration.ingest.helpers import auth, error_of

pytestmark = pytest.mark.django_db


def tree_of(client, key, trace_id: str) -> dict:
    response = client.get(f"/v1/traces/{trace_id}", **auth(key))
    assert response.status_code == 200, response.content
    return response.json()


def shape(nodes: list[dict]) -> list:
    """[(id, [children...]), ...]"""
    return [(node["id"], shape(node["children"])) for node in nodes]


def test_children_nest_under_parents_and_orphans_are_roots(client, key, ingest):
    ingest(
        [
            # sent out of order on purpose: children before their parents
            {
                "id": "grandchild",
                "trace_id": "tr",
                "parent_id": "child-1",
                "start_time": "2025-01-15T10:00:01.500Z",
            },
            {
                "id": "child-2",
                "trace_id": "tr",
                "parent_id": "root",
                "kind": "tool",
                "start_time": "2025-01-15T10:00:03Z",
                "end_time": "2025-01-15T10:00:04Z",
                "error": {"type": "Timeout", "message": "tool timed out"},
            },
            {
                "id": "child-1",
                "trace_id": "tr",
                "parent_id": "root",
                "model": "gpt-4o-mini",
                "start_time": "2025-01-15T10:00:01Z",
                "end_time": "2025-01-15T10:00:02Z",
                "response": {"usage": {"prompt_tokens": 100, "completion_tokens": 20}},
                "metrics": {"estimated_cost": 0.25},
            },
            {
                "id": "root",
                "trace_id": "tr",
                "kind": "agent",
                "start_time": "2025-01-15T10:00:00Z",
                "end_time": "2025-01-15T10:00:05Z",
            },
            {
                "id": "orphan",
                "trace_id": "tr",
                "parent_id": "never-sent",
                "model": "claude-3-5-haiku",
                "start_time": "2025-01-15T10:00:04Z",
                "end_time": "2025-01-15T10:00:06.250Z",
                "response": {"usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}},
                "metrics": {"estimated_cost": 0.5},
            },
            {"id": "elsewhere", "trace_id": "other-trace", "start_time": "2025-01-15T09:00:00Z"},
        ]
    )

    tree = tree_of(client, key, "tr")

    assert set(tree) == {"trace_id", "start_time", "totals", "spans"}
    assert tree["trace_id"] == "tr"
    assert tree["start_time"] == "2025-01-15T10:00:00+00:00"
    assert shape(tree["spans"]) == [
        ("root", [("child-1", [("grandchild", [])]), ("child-2", [])]),
        ("orphan", []),
    ]
    child_1 = tree["spans"][0]["children"][0]
    assert (child_1["parent_id"], child_1["model"], child_1["provider"]) == ("root", "gpt-4o-mini", "openai")
    assert tree["spans"][1]["parent_id"] == "never-sent"
    assert tree["spans"][0]["children"][1]["status"] == "error"
    assert tree["totals"] == {
        "spans": 5,
        "errors": 1,
        "prompt_tokens": 110,
        "completion_tokens": 25,
        "total_tokens": 135,
        "cost": 0.75,
        "duration_ms": 6250.0,  # first start to last end
        "models": ["claude-3-5-haiku", "gpt-4o-mini"],
    }


def test_a_lone_span_is_a_trace_of_one(client, key, ingest):
    ingest([{"id": "lone", "start_time": "2025-01-15T10:00:00Z"}])
    tree = tree_of(client, key, "lone")  # trace_id defaults to the span id
    assert shape(tree["spans"]) == [("lone", [])]
    assert tree["totals"] == {
        "spans": 1,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost": 0.0,
        "duration_ms": None,
        "models": [],
    }


def test_a_cycle_of_parents_does_not_hang(client, key, ingest):
    ingest(
        [
            {"id": "a", "trace_id": "loop", "parent_id": "b", "start_time": "2025-01-15T10:00:00Z"},
            {"id": "b", "trace_id": "loop", "parent_id": "a", "start_time": "2025-01-15T10:00:01Z"},
        ]
    )
    response = client.get("/v1/traces/loop", **auth(key))
    assert response.status_code == 200
    assert response.json()["totals"]["spans"] == 2


def test_trace_ids_with_odd_characters(client, key, ingest):
    ingest(
        [
            {"id": "odd-1", "trace_id": "with space&and%percent?"},
            {"id": "odd-2", "trace_id": "nul\u0000inside"},
        ]
    )
    assert [s["id"] for s in tree_of(client, key, "with%20space%26and%25percent%3F")["spans"]] == ["odd-1"]
    # PostgreSQL text cannot hold NUL: it is stored, and found, as U+FFFD
    assert [s["id"] for s in tree_of(client, key, "nul%00inside")["spans"]] == ["odd-2"]


@pytest.mark.parametrize("trace_id", ["unknown", "%00", "x" * 2000])
def test_unknown_trace_is_404(client, key, trace_id):
    error = error_of(client.get(f"/v1/traces/{trace_id}", **auth(key)), 404, "not_found")
    assert error["message"].startswith("No trace ")
    assert error["message"].endswith(" in this project.")


def test_a_trace_id_with_slashes_is_reachable(client, key, ingest):
    ingest([{"id": "s1", "trace_id": "run/2025/abc"}])
    tree = tree_of(client, key, "run/2025/abc")
    assert tree["trace_id"] == "run/2025/abc"
    assert shape(tree["spans"]) == [("s1", [])]
