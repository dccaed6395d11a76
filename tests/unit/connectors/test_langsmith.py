"""LangSmith connector: runs for POST /runs/batch, checked with the `langsmith` SDK's own
schemas (`Run`, `UsageMetadata`), dotted-order parser and `RunTree`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from langsmith import schemas
from langsmith.run_trees import RunTree, _parse_dotted_order
from pydantic import TypeAdapter

from apps.destinations.connectors import connector_for
from apps.destinations.connectors._spans import stable_uuid
from tests.unit.connectors.llm_samples import bare_span, destination, llm_span, tool_error_span, trace

connector = connector_for("langsmith")


def build(spans, **config):
    dest = destination("langsmith", {"project": "my-project", **config})
    return connector.build_requests(dest, spans, message_id="msg-1")


def runs_of(requests):
    runs = []
    for request in requests:
        body = orjson.loads(request.body)
        assert set(body) == {"post", "patch"} and body["patch"] == []
        runs.extend(body["post"])
    return runs


def validated(run):
    """The run parsed by the SDK's Run model and its dotted order by the SDK's parser."""
    model = schemas.Run(**run)
    segments = _parse_dotted_order(run["dotted_order"])
    assert segments[-1][1] == model.id
    assert segments[0][1] == model.trace_id
    if run.get("outputs", {}).get("usage_metadata"):
        TypeAdapter(schemas.UsageMetadata).validate_python(run["outputs"]["usage_metadata"])
    return model


def test_request_shape():
    [request] = build(trace())
    assert request.method == "POST"
    assert request.url == "https://api.smith.langchain.com/runs/batch"
    assert request.headers["x-api-key"] == "key-123"
    assert request.headers["content-type"] == "application/json"
    assert request.span_count == 3


def test_api_url_override_for_self_hosted():
    [request] = build([bare_span()], api_url="https://ls.example.com/api/v1/")
    assert request.url == "https://ls.example.com/api/v1/runs/batch"


def test_nested_trace_maps_hierarchy_and_dotted_order():
    runs = {run["name"]: run for run in runs_of(build(trace()))}
    root, llm, tool = runs["support-agent"], runs["chat gpt-4o"], runs["lookup_order"]
    for run in runs.values():
        validated(run)
        assert run["trace_id"] == root["id"] == str(stable_uuid("span-root"))
        assert run["session_name"] == "my-project"
    assert "parent_run_id" not in root
    assert llm["parent_run_id"] == tool["parent_run_id"] == root["id"]
    assert llm["dotted_order"] == (f"20260102T030405000000Z{root['id']}.20260102T030405123456Z{llm['id']}")
    assert llm["dotted_order"].startswith(root["dotted_order"] + ".")
    assert root["run_type"] == "chain" and llm["run_type"] == "llm" and tool["run_type"] == "tool"


def test_dotted_order_matches_the_sdk_run_tree():
    runs = {run["name"]: run for run in runs_of(build(trace()))}
    root, llm = runs["support-agent"], runs["chat gpt-4o"]
    tree = RunTree(
        name="support-agent",
        run_type="chain",
        id=uuid.UUID(root["id"]),
        start_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        client=None,
    )
    child = tree.create_child(
        name="chat gpt-4o",
        run_type="llm",
        run_id=uuid.UUID(llm["id"]),
        start_time=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    )
    assert child.dotted_order == llm["dotted_order"]
    assert str(child.trace_id) == llm["trace_id"]


def test_llm_run_fields():
    [run] = runs_of(build([llm_span(parent_id=None)]))
    model = validated(run)
    assert model.inputs["messages"][1] == {"role": "user", "content": "Where is my order?"}
    assert model.inputs["parameters"]["temperature"] == 0.2
    assert run["outputs"]["content"] == "It ships tomorrow."
    assert run["outputs"]["messages"] == [{"role": "assistant", "content": "It ships tomorrow."}]
    assert run["outputs"]["usage_metadata"] == {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": 17,
        "total_cost": 0.00042,
    }
    meta = model.extra["metadata"]
    assert meta["ls_provider"] == "openai" and meta["ls_model_name"] == "gpt-4o"
    assert meta["session_id"] == "sess-1" and meta["user_id"] == "user-1"
    assert meta["environment"] == "prod" and meta["untrace"]["rule"] == "all"
    assert model.extra["invocation_params"]["max_tokens"] == 256
    assert sorted(run["tags"]) == ["team:support", "tier:gold"]
    assert run["start_time"] == "2026-01-02T03:04:05.123456Z"
    assert run["end_time"] == "2026-01-02T03:04:06.500000Z"
    assert run["events"] == [{"name": "new_token", "time": "2026-01-02T03:04:05.333456Z"}]
    assert model.error is None


def test_error_run():
    [run] = runs_of(build([tool_error_span(parent_id=None)]))
    model = validated(run)
    assert model.error == "TimeoutError: orders API timed out\n\nline 1\nline 2"
    assert model.inputs == {"prompt": "order 42"}


def test_bare_span():
    [run] = runs_of(build([bare_span()]))
    model = validated(run)
    assert model.id == model.trace_id == stable_uuid("span-bare")
    assert model.name == "span" and model.run_type == "chain"
    assert model.inputs == {}
    assert "end_time" not in run and "error" not in run and "tags" not in run


def test_uuid_span_ids_are_kept_and_ids_are_stable():
    span_id = "3f1e0f4a-3d4c-4b5e-9a7b-2c1d0e9f8a7b"
    first = runs_of(build([llm_span(id=span_id, parent_id=None)]))[0]
    again = runs_of(build([llm_span(id=span_id, parent_id=None)]))[0]
    assert first["id"] == span_id
    assert first == again
    other = runs_of(build(trace()))[1]
    assert other["id"] == str(uuid.uuid5(uuid.UUID("5b1f8f0e-9c1d-5d0a-8a51-7d0b3b6f2c11"), "span-llm-1"))


def test_parent_outside_the_batch_is_taken_as_root():
    [run] = runs_of(build([llm_span()]))  # its parent, span-root, is not in the batch
    validated(run)
    parent = str(stable_uuid("span-root"))
    assert run["trace_id"] == run["parent_run_id"] == parent
    assert run["dotted_order"] == f"20260102T030405123456Z{parent}.20260102T030405123456Z{run['id']}"


def test_child_never_sorts_before_its_parent():
    spans = trace()
    spans[1]["start_time"] = "2026-01-02T03:04:04Z"  # clock skew: before the root
    runs = {run["name"]: run for run in runs_of(build(spans))}
    segments = _parse_dotted_order(runs["chat gpt-4o"]["dotted_order"])
    assert segments[1][0] >= segments[0][0]
    validated(runs["chat gpt-4o"])


def test_split_over_size_limit(monkeypatch):
    monkeypatch.setattr(type(connector), "max_request_bytes", 4000)
    spans = [llm_span(id=f"s{i}", parent_id=None, request={"prompt": "x" * 1500}) for i in range(6)]
    requests = build(spans)
    assert len(requests) > 1
    assert all(len(r.body) <= 4000 for r in requests)
    assert sum(r.span_count for r in requests) == 6
    assert sorted(run["name"] for run in runs_of(requests)) == ["chat gpt-4o"] * 6


def test_split_over_count_limit(monkeypatch):
    monkeypatch.setattr(type(connector), "max_batch_spans", 2)
    requests = build([llm_span(id=f"s{i}", parent_id=None) for i in range(5)])
    assert [r.span_count for r in requests] == [2, 2, 1]


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (409, True, False),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (408, False, True),
        (422, False, False),
        (429, False, True),
        (500, False, True),
        (503, False, True),
    ],
)
def test_classify(status, ok, retryable):
    outcome = connector.classify(httpx.Response(status, json={"detail": "x"}, headers={"retry-after": "3"}))
    assert outcome.ok is ok
    assert outcome.retryable is retryable
    if status == 429:
        assert outcome.retry_after == 3.0
