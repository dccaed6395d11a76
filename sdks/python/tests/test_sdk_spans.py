"""Spans, nesting, the decorator and W3C trace context (no network: the client is disabled)."""

import asyncio
import re
from datetime import datetime

import pytest

import untrace_sdk
from untrace_sdk import Untrace, from_traceparent, traceparent

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Recording(Untrace):
    """A client that keeps ended spans instead of sending them."""

    def __init__(self, **kwargs):
        super().__init__(api_key="ut_test", base_url="http://127.0.0.1:9", enabled=False, **kwargs)
        self.ended = []

    def _enqueue(self, span):
        self.ended.append(span.to_dict())


@pytest.fixture
def client():
    return Recording()


def test_nested_spans_share_the_trace_and_point_to_their_parent(client):
    with client.span("root", "chain", user_id="u1", session_id="s1") as root:
        assert untrace_sdk.current_span() is root
        with client.span("child", "tool") as child, client.span("grandchild", "retrieval"):
            pass
        assert untrace_sdk.current_span() is root
    assert untrace_sdk.current_span() is None
    by_name = {span["name"]: span for span in client.ended}
    assert [span["name"] for span in client.ended] == ["grandchild", "child", "root"]
    assert by_name["child"]["trace_id"] == root.trace_id == by_name["grandchild"]["trace_id"]
    assert by_name["child"]["parent_id"] == root.id
    assert by_name["grandchild"]["parent_id"] == child.id
    assert "parent_id" not in by_name["root"]
    assert by_name["grandchild"]["user_id"] == "u1" and by_name["grandchild"]["session_id"] == "s1"
    for span in client.ended:
        assert RFC3339.match(span["start_time"]) and RFC3339.match(span["end_time"])
        start = datetime.fromisoformat(span["start_time"])
        assert datetime.fromisoformat(span["end_time"]) >= start
    assert len(root.trace_id) == 32 and len(root.id) == 16


def test_setters_fill_the_canonical_fields(client):
    with client.span("call", "llm") as span:
        span.set_input([{"role": "user", "content": "hi"}], parameters={"temperature": 0})
        span.set_output("hello", finish_reason="stop")
        span.set_model("gpt-4o-mini", provider="openai")
        span.set_usage(prompt_tokens=3, completion_tokens=2)
        span.set_metadata(environment="test", team="search")
        span.set_tags(feature="chat", attempt=2)
        span.set_user("u9").set_session("sess")
        span.set_metrics(time_to_first_token_ms=12.5)
    doc = client.ended[0]
    assert doc["kind"] == "llm"
    assert doc["request"] == {
        "messages": [{"role": "user", "content": "hi"}],
        "parameters": {"temperature": 0},
    }
    assert doc["response"] == {
        "content": "hello",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    assert doc["model"] == "gpt-4o-mini" and doc["provider"] == "openai"
    assert doc["metadata"] == {
        "environment": "test",
        "team": "search",
        "tags": {"feature": "chat", "attempt": "2"},
    }
    assert doc["user_id"] == "u9" and doc["session_id"] == "sess"
    assert doc["metrics"] == {"time_to_first_token_ms": 12.5}


def test_an_exception_is_recorded_and_re_raised(client):
    with pytest.raises(KeyError), client.span("failing"):
        raise KeyError("missing")
    error = client.ended[0]["error"]
    assert error["type"] == "KeyError"
    assert error["message"] == "'missing'"
    assert "Traceback" in error["stack"] and "KeyError" in error["stack"]


def test_unknown_kind_falls_back_to_span_and_end_is_idempotent(client):
    span = client.span("manual", "weird")
    span.end()
    span.end()
    assert len(client.ended) == 1 and client.ended[0]["kind"] == "span"


def test_client_defaults_go_into_metadata():
    client = Recording(environment="prod", version="1.2", tags={"team": "a"})
    with client.span("x") as span:
        span.set_tags(extra="b")
    assert client.ended[0]["metadata"] == {
        "environment": "prod",
        "version": "1.2",
        "tags": {"team": "a", "extra": "b"},
    }
    with client.span("y"):
        pass
    assert client.ended[1]["metadata"]["tags"] == {"team": "a"}  # defaults are copied, not shared


def test_observe_sync_captures_arguments_result_and_nesting(client):
    @client.observe(kind="tool")
    def add(a, b=2):
        return a + b

    @client.observe
    def outer(x):
        return add(x, b=5)

    assert outer(1) == 6
    inner, root = client.ended
    assert root["name"].endswith("outer") and inner["name"].endswith("add")
    assert inner["parent_id"] == root["id"] and inner["trace_id"] == root["trace_id"]
    assert inner["kind"] == "tool"
    assert inner["request"] == {"input": {"a": 1, "b": 5}}
    assert inner["response"] == {"output": 6}


def test_observe_async_and_concurrent_tasks_keep_their_own_parents(client):
    @client.observe(name="leaf")
    async def leaf(i):
        await asyncio.sleep(0.01)
        return i

    @client.observe(name="branch", capture_input=False)
    async def branch(i):
        return await leaf(i)

    async def main():
        with client.span("root"):
            return await asyncio.gather(branch(1), branch(2))

    assert asyncio.run(main()) == [1, 2]
    spans = {s["id"]: s for s in client.ended}
    root = next(s for s in spans.values() if s["name"] == "root")
    branches = [s for s in spans.values() if s["name"] == "branch"]
    leaves = [s for s in spans.values() if s["name"] == "leaf"]
    assert {b["parent_id"] for b in branches} == {root["id"]}
    assert sorted(leaf["parent_id"] for leaf in leaves) == sorted(b["id"] for b in branches)
    assert sorted(leaf["response"]["output"] for leaf in leaves) == [1, 2]
    assert all("request" not in b for b in branches)


def test_observe_records_exceptions_of_async_functions(client):
    @client.observe
    async def boom():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        asyncio.run(boom())
    assert client.ended[0]["error"]["type"] == "RuntimeError"


def test_traceparent_round_trip_continues_the_trace(client):
    assert traceparent() is None
    with client.span("here") as span:
        header = traceparent()
        assert header == f"00-{span.trace_id}-{span.id}-01"
    remote = from_traceparent(header)
    assert remote.trace_id == span.trace_id and remote.span_id == span.id
    with remote:
        assert traceparent() == header
        with client.span("there") as there:
            pass
    assert there.trace_id == span.trace_id and there.parent_id == span.id
    other = client.span("direct", traceparent=header)
    other.end()
    assert other.trace_id == span.trace_id and other.parent_id == span.id


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ],
)
def test_invalid_traceparent_is_ignored(header):
    assert from_traceparent(header) is None


def test_future_traceparent_versions_and_unsampled_flags_are_read():
    remote = from_traceparent("01-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00-more")
    assert remote.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and not remote.sampled
    assert remote.traceparent() == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def test_explicit_parent_none_starts_a_new_trace(client):
    with client.span("a") as a:
        b = client.span("b", parent=None)
        b.end()
    assert b.trace_id != a.trace_id and b.parent_id is None
