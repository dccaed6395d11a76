"""The Python SDK (sdks/python) against a real Untrace on loopback, and the fake OpenAI upstream.

Spans go through the SDK's queue and sender to `POST /v1/traces/batch`; the
trace is read back with `GET /v1/traces/{trace_id}`.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import httpx
import openai
import pytest
from untrace_sdk import Untrace, from_traceparent, traceparent, wrap_anthropic, wrap_openai

from apps.proxy.headers import parse_traceparent
from tests.factories import ApiKeyFactory
from tests.fakes.llm_upstream import fake_upstream
from tests.live import free_port, stack_env, web_server

pytestmark = pytest.mark.django_db(transaction=True)

SDK_REDIS = "redis://127.0.0.1:6379/14"


@pytest.fixture
def stack():
    key = ApiKeyFactory()
    with web_server(stack_env(redis_url=SDK_REDIS)) as base:
        yield base, key


def _trace(base: str, key, trace_id: str) -> dict:
    response = httpx.get(f"{base}/v1/traces/{trace_id}", headers={"X-Untrace-Key": key.secret}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _walk(nodes: list[dict]) -> Iterator[dict]:
    for node in nodes:
        yield node
        yield from _walk(node["children"])


def test_nested_spans_and_openai_calls_arrive_as_one_tree(stack):
    base, key = stack
    client = Untrace(api_key=key.secret, base_url=base, flush_interval=0.05, environment="test")
    with fake_upstream() as (fake, state):
        oai = wrap_openai(openai.OpenAI(api_key="sk-test", base_url=f"{fake}/v1", max_retries=0), client)
        aoai = wrap_openai(
            openai.AsyncOpenAI(api_key="sk-test", base_url=f"{fake}/v1", max_retries=0), client
        )
        messages = [{"role": "user", "content": "Say hello"}]

        @client.observe(kind="tool")
        def lookup(city: str) -> dict:
            return {"city": city, "weather": "sunny"}

        with client.span("answer", "agent", user_id="user-1", session_id="sess-1") as root:
            root.set_input("Say hello").set_tags(team="search")
            with client.span("retrieve", "retrieval") as retrieve:
                retrieve.set_output(["doc-1", "doc-2"])
                lookup("Paris")
            header = traceparent()
            completion = oai.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)
            chunks = list(
                oai.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])

            async def call_async() -> str:
                answer = await aoai.chat.completions.create(model="gpt-4o", messages=messages)
                return answer.choices[0].message.content

            assert asyncio.run(call_async()) == "Hello from the fake!"
            root.set_output(completion.choices[0].message.content)
        assert len(state.requests) == 4
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the fake!"
    assert client.flush(15)
    assert client.sent == 7 and client.dropped == 0

    # The proxy reads the SDK's traceparent as this trace and this parent.
    assert parse_traceparent(header) == (root.trace_id, root.id)

    tree = _trace(base, key, root.trace_id)
    assert tree["totals"]["spans"] == 7 and tree["totals"]["errors"] == 0
    assert [span["name"] for span in tree["spans"]] == ["answer"]
    top = tree["spans"][0]
    assert top["kind"] == "agent" and top["user_id"] == "user-1" and top["session_id"] == "sess-1"
    assert top["metadata"]["tags"] == {"team": "search"} and top["metadata"]["environment"] == "test"
    assert [c["name"] for c in top["children"]] == [
        "retrieve",
        "openai.chat.completions",
        "openai.chat.completions",
        "openai.embeddings",
        "openai.chat.completions",
    ]
    retrieve_node = top["children"][0]
    assert [c["name"] for c in retrieve_node["children"]][0].endswith("lookup")
    assert retrieve_node["children"][0]["kind"] == "tool"
    assert retrieve_node["children"][0]["response"]["output"] == {"city": "Paris", "weather": "sunny"}

    plain, streamed, embedding, async_call = top["children"][1:]
    for llm in (plain, streamed):
        assert llm["kind"] == "llm" and llm["provider"] == "openai" and llm["model"] == "gpt-4o-mini"
        assert llm["response"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        assert llm["response"]["content"] == "Hello from the fake!"
        assert llm["metrics"]["estimated_cost"] > 0
        assert llm["user_id"] == "user-1" and llm["session_id"] == "sess-1"
    assert plain["request"]["messages"] == messages
    assert plain["request"]["parameters"] == {"temperature": 0}
    assert streamed["metrics"]["time_to_first_token_ms"] >= 0
    assert embedding["kind"] == "embedding" and embedding["model"] == "text-embedding-3-small"
    assert embedding["response"]["usage"]["prompt_tokens"] == 6
    assert async_call["model"] == "gpt-4o" and async_call["metrics"]["estimated_cost"] > 0
    assert tree["totals"]["prompt_tokens"] == 12 * 3 + 6
    assert tree["totals"]["completion_tokens"] == 15
    assert tree["totals"]["cost"] == pytest.approx(
        sum(s["metrics"].get("estimated_cost", 0) for s in _walk(tree["spans"]) if s.get("metrics"))
    )
    assert tree["totals"]["cost"] > 0
    assert tree["totals"]["models"] == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
    client.shutdown()


def test_a_streamed_call_without_usage_is_counted_by_untrace_and_errors_are_recorded(stack):
    base, key = stack
    client = Untrace(api_key=key.secret, base_url=base, flush_interval=0.05)
    with fake_upstream() as (fake, _):
        oai = wrap_openai(openai.OpenAI(api_key="sk-test", base_url=f"{fake}/v1", max_retries=0), client)
        with client.span("root", "chain") as root:
            list(
                oai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
            with pytest.raises(openai.BadRequestError):
                oai.chat.completions.create(model="error-400", messages=[])
    assert client.flush(15)
    tree = _trace(base, key, root.trace_id)
    streamed, failed = tree["spans"][0]["children"]
    assert streamed["response"]["content"] == "Hello from the fake!"
    assert streamed["response"]["usage"]["completion_tokens"] > 0  # filled by Untrace's tokenizer
    assert failed["status"] == "error" and failed["error"]["type"] == "BadRequestError"
    assert "Fake error 400." in failed["error"]["message"]
    assert tree["totals"]["errors"] == 1


def test_anthropic_messages_plain_and_streamed(stack):
    base, key = stack
    client = Untrace(api_key=key.secret, base_url=base, flush_interval=0.05)
    with fake_upstream() as (fake, _):
        claude = wrap_anthropic(
            anthropic.Anthropic(api_key="sk-ant-test", base_url=fake, max_retries=0), client
        )
        messages = [{"role": "user", "content": "hi"}]
        with client.span("root", "chain") as root:
            claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=messages)
            with claude.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=messages, stream=True
            ) as stream:
                events = [event.type for event in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert client.flush(15)
    plain, streamed = _trace(base, key, root.trace_id)["spans"][0]["children"]
    for span in (plain, streamed):
        assert span["provider"] == "anthropic" and span["model"] == "claude-haiku-4-5"
        assert span["response"]["content"] == "Hello from the fake!"
        assert span["response"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        assert span["response"]["finish_reason"] == "end_turn"
        assert span["metrics"]["estimated_cost"] > 0
    assert streamed["metrics"]["time_to_first_token_ms"] >= 0


def test_a_remote_parent_continues_the_trace(stack):
    base, key = stack
    client = Untrace(api_key=key.secret, base_url=base, flush_interval=0.05)
    with client.span("frontend") as front:
        header = traceparent()
    with from_traceparent(header), client.span("backend", "chain"):
        pass
    assert client.flush(15)
    tree = _trace(base, key, front.trace_id)
    assert [s["name"] for s in tree["spans"]] == ["frontend"]
    assert [c["name"] for c in tree["spans"][0]["children"]] == ["backend"]


def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def test_untrace_down_never_raises_and_counts_drops():
    client = Untrace(
        api_key="ut_none",
        base_url=f"http://127.0.0.1:{_closed_port()}",
        flush_interval=0.05,
        max_retries=2,
        backoff_base=0.01,
    )
    with client.span("root"):
        for i in range(3):
            client.span(f"child-{i}").end()
    assert client.flush(10)
    assert client.dropped == 4 and client.sent == 0
    assert client.shutdown(1)


@contextmanager
def _limited_front(target: str, refusals: int, retry_after: str) -> Iterator[tuple[str, list[int]]]:
    """Answers the first `refusals` posts with 429 and Retry-After, then relays to `target`."""
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if len(answers) < refusals:
                answers.append(429)
                self.send_response(429)
                self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(target + self.path, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                content = response.read()
                answers.append(response.status)
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


def test_429_with_retry_after_is_retried_and_the_spans_arrive(stack):
    base, key = stack
    with _limited_front(base, refusals=2, retry_after="0.2") as (front, answers):
        client = Untrace(api_key=key.secret, base_url=front, flush_interval=0.05, backoff_base=0.001)
        with client.span("limited") as span:
            pass
        assert client.flush(15)
    assert answers == [429, 429, 202]
    assert client.retries == 2 and client.sent == 1 and client.dropped == 0
    assert _trace(base, key, span.trace_id)["spans"][0]["name"] == "limited"


def test_a_full_queue_drops_the_oldest(stack):
    base, key = stack
    client = Untrace(api_key=key.secret, base_url=base, max_queue=5, batch_size=1000, flush_interval=60)
    with client.span("root") as root:
        for i in range(7):
            client.span(f"child-{i}").end()
    assert client.dropped == 3 and client.dropped_queue_full == 3  # child-0..2 went, root came last
    assert client.flush(15)
    tree = _trace(base, key, root.trace_id)
    assert [s["name"] for s in tree["spans"]] == ["root"]
    assert [c["name"] for c in tree["spans"][0]["children"]] == [f"child-{i}" for i in range(3, 7)]
