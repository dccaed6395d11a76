"""Header parsing and stream assembly, without a server."""

from __future__ import annotations

import gzip
import uuid

import orjson
import pytest

from apps.proxy.capture import ProxiedCall, build_span, sse_events
from apps.proxy.headers import call_metadata, client_headers, parse_tags, parse_traceparent, upstream_headers
from apps.proxy.upstream import retry_after_seconds, upstream_url


def _call(**kwargs) -> ProxiedCall:
    defaults = {
        "project_id": uuid.uuid4(),
        "organization_id": uuid.uuid4(),
        "key_id": None,
        "provider": "openai",
        "method": "POST",
        "path": "chat/completions",
        "meta": call_metadata({}),
        "start_ms": 1000.0,
        "end_ms": 1500.0,
        "status": 200,
        "request_content_type": "application/json",
        "request_body": b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
    }
    return ProxiedCall(**{**defaults, **kwargs})


def _sse(*events: object, name: str | None = None) -> bytes:
    prefix = f"event: {name}\n" if name else ""
    return b"".join(
        f"{prefix}data: {e if isinstance(e, str) else orjson.dumps(e).decode()}\n\n".encode() for e in events
    )


def test_traceparent():
    trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert parse_traceparent(f"00-{trace}-{parent}-01") == (trace, parent)
    assert parse_traceparent(f"00-{'0' * 32}-{parent}-01") is None
    assert parse_traceparent("garbage") is None
    assert parse_traceparent(None) is None


def test_tags_and_metadata():
    assert parse_tags("team=search, env = prod,bad,=x") == {"team": "search", "env": "prod"}
    meta = call_metadata({"x-untrace-metadata": "[1]", "x-untrace-session-id": "s"})
    assert (meta.metadata, meta.session_id, len(meta.trace_id), len(meta.span_id)) == ({}, "s", 32, 16)


def test_headers_forwarded_and_returned():
    sent = upstream_headers(
        [
            (b"Host", b"proxy"),
            (b"X-Untrace-Key", b"k"),
            (b"Authorization", b"Bearer sk"),
            (b"Connection", b"x"),
            (b"X-Forwarded-For", b"203.0.113.9"),
            (b"X-Forwarded-Host", b"app.example"),
            (b"X-Forwarded-Proto", b"https"),
            (b"Forwarded", b"for=203.0.113.9"),
            (b"X-Real-IP", b"203.0.113.9"),
            (b"Via", b"1.1 edge"),
            (b"X-Untrace-Session-Id", b"s"),
        ]
    )
    assert sent == [("authorization", "Bearer sk")]
    back = client_headers(((b"Transfer-Encoding", b"chunked"), (b"X-Request-Id", b"r")), trace_id="t")
    assert back == [(b"x-request-id", b"r"), (b"x-untrace-trace-id", b"t")]


def test_upstream_url_and_retry_after(settings):
    settings.UNTRACE_OPENAI_UPSTREAM = "https://api.openai.com/"
    assert upstream_url(provider="openai", path="chat/completions", query_string=b"") == (
        "https://api.openai.com/v1/chat/completions"
    )
    assert upstream_url(provider="openai", path="v1/models", query_string=b"a=1").endswith("/v1/models?a=1")
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None


def test_sse_events_split_across_chunks_with_crlf():
    raw = b"event: a\r\ndata: 1\r\n\r\ndata: 2\n\n"
    events = list(sse_events([(1.0, raw[:7]), (2.0, raw[7:20]), (3.0, raw[20:])]))
    assert events == [(3.0, "a", "1"), (3.0, "message", "2")]


def test_gzip_json_answer_is_decoded():
    body = gzip.compress(orjson.dumps({"model": "gpt-4o", "choices": [{"message": {"content": "ok"}}]}))
    span = build_span(
        _call(response_content_type="application/json", response_encoding="gzip", response_body=body)
    )
    assert (span["model"], span["response"]["content"]) == ("gpt-4o", "ok")


def test_openai_stream_ttft_is_the_first_content_chunk():
    role = {"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    text = {"model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "length"}]}
    chunks = [(1010.0, _sse(role)), (1100.0, _sse(text)), (1200.0, _sse("[DONE]"))]
    span = build_span(_call(response_content_type="text/event-stream", chunks=chunks))
    assert span["metrics"] == {"time_to_first_token_ms": 100.0}
    assert span["response"] == {"content": "Hi", "finish_reason": "length"}


def test_responses_api_stream_uses_the_completed_event():
    completed = {
        "type": "response.completed",
        "response": {
            "model": "gpt-4o",
            "status": "completed",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "Yo"}]}],
            "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
        },
    }
    delta = {"type": "response.output_text.delta", "delta": "Yo"}
    chunks = [(1050.0, _sse(delta, name="response.output_text.delta")), (1060.0, _sse(completed))]
    span = build_span(_call(path="responses", response_content_type="text/event-stream", chunks=chunks))
    assert span["response"]["content"] == "Yo"
    assert span["response"]["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    assert span["metrics"]["time_to_first_token_ms"] == 50.0


def test_anthropic_tool_use_stream():
    events = [
        {"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 7}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t1", "name": "f"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": ": 1}"},
        },
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
    ]
    chunks = [(1000.0 + i, _sse(e)) for i, e in enumerate(events)]
    span = build_span(
        _call(provider="anthropic", path="messages", response_content_type="text/event-stream", chunks=chunks)
    )
    (block,) = span["response"]["messages"][0]["content"]
    assert block == {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}
    assert span["response"]["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert span["response"]["finish_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "bad", "type": "invalid_request_error"}}', "invalid_request_error"),
        (b"not json", "http_500"),
    ],
)
def test_error_answers_are_error_spans(body, expected):
    span = build_span(_call(status=500, response_content_type="application/json", response_body=body))
    assert span["error"]["type"] == expected
    assert "content" not in (span.get("response") or {})
