"""The proxy with the official clients: identical to calling the provider directly, and traced."""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.factories import ApiKeyFactory
from tests.live import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_chat_completion_is_identical_and_traced(stack, api_key, traceparent):
    header, trace_id, parent_id = traceparent
    client = stack.openai(
        api_key.secret,
        **{
            "X-Untrace-Session-Id": "sess-1",
            "X-Untrace-User-Id": "user-7",
            "X-Untrace-Tags": "team=search, env=prod",
            "X-Untrace-Metadata": '{"feature": "chat", "version": "1.2"}',
            "traceparent": header,
        },
    )
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    direct = stack.openai_direct().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().model_dump() == direct.model_dump()
    assert raw.headers["x-untrace-trace-id"] == trace_id

    span = stack.wait_span(api_key.secret, trace_id)
    assert span["parent_id"] == parent_id
    assert span["name"] == "openai.chat.completions"
    assert span["kind"] == "llm"
    assert span["provider"] == "openai"
    assert span["model"] == "gpt-4o-mini"
    assert span["status"] == "ok"
    assert span["session_id"] == "sess-1"
    assert span["user_id"] == "user-7"
    assert span["metadata"] == {
        "feature": "chat",
        "version": "1.2",
        "tags": {"team": "search", "env": "prod"},
    }
    assert span["request"]["messages"] == MESSAGES
    assert span["response"]["content"] == "Hello from the fake!"
    assert span["response"]["finish_reason"] == "stop"
    assert span["response"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert span["metrics"]["estimated_cost"] > 0
    assert span["metrics"]["latency_ms"] >= 0


def test_untrace_headers_stay_here_and_the_provider_key_goes_on(stack, api_key):
    raw = stack.openai(api_key.secret).models.with_raw_response.list()
    stack.wait_span(api_key.secret, raw.headers["x-untrace-trace-id"])
    sent = stack.state.requests[-1]
    names = {name.lower() for name in sent["headers"]}
    assert "x-untrace-key" not in names
    assert sent["headers"]["Authorization"] == "Bearer sk-test-provider"
    assert sent["path"] == "/v1/models"


def test_stream_chunks_are_identical_and_the_trace_is_assembled(stack, api_key, traceparent):
    header, trace_id, _ = traceparent
    kwargs = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    proxied = list(stack.openai(api_key.secret, traceparent=header).chat.completions.create(**kwargs))
    direct = list(stack.openai_direct().chat.completions.create(**kwargs))
    assert [c.model_dump() for c in proxied] == [c.model_dump() for c in direct]
    assert len(proxied) == 8

    span = stack.wait_span(api_key.secret, trace_id)
    assert span["response"]["content"] == "Hello from the fake!"
    assert span["response"]["finish_reason"] == "stop"
    assert span["response"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert span["attributes"]["proxy.streamed"] is True
    assert 0 <= span["metrics"]["time_to_first_token_ms"] <= span["metrics"]["latency_ms"]
    assert "time_per_output_token_ms" in span["metrics"]


def test_stream_bytes_are_forwarded_as_they_arrive(stack, api_key, traceparent):
    header, trace_id, _ = traceparent
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    headers = {"Content-Type": "application/json", "X-Fake-Chunk-Delay-Ms": "40"}

    def chunks(url: str, extra: dict[str, str]) -> tuple[bytes, list[float]]:
        data, times = b"", []
        with (
            httpx.Client(timeout=10) as client,
            client.stream("POST", url, content=body, headers={**headers, **extra}) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            for chunk in response.iter_raw():
                data += chunk
                times.append(time.monotonic())
        return data, times

    proxied, arrivals = chunks(
        f"{stack.base}/v1/proxy/openai/chat/completions",
        {"X-Untrace-Key": api_key.secret, "traceparent": header},
    )
    direct, _ = chunks(f"{stack.fake}/v1/chat/completions", {})
    assert proxied == direct
    assert len(arrivals) >= 5  # chunk by chunk as they arrive, not one buffered body
    assert arrivals[-1] - arrivals[0] >= 0.15

    span = stack.wait_span(api_key.secret, trace_id)
    # No usage in the stream: counted at store time.
    usage = span["response"]["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["usage_estimated"] is True
    assert span["metrics"]["time_to_first_token_ms"] >= 40


def test_streamed_tool_calls_are_assembled(stack, api_key, traceparent):
    header, trace_id, _ = traceparent
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(
        stack.openai(api_key.secret, traceparent=header).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, tools=tools, stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    span = stack.wait_span(api_key.secret, trace_id)
    call = span["response"]["messages"][0]["tool_calls"][0]
    assert call == {
        "id": "call_fake1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert span["response"]["finish_reason"] == "tool_calls"


def test_other_endpoints_are_identical_and_traced(stack, api_key, traceparent):
    header, trace_id, _ = traceparent
    client, direct = stack.openai(api_key.secret), stack.openai_direct()
    traced = stack.openai(api_key.secret, traceparent=header)

    embedding = traced.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert (
        embedding.model_dump()
        == direct.embeddings.create(model="text-embedding-3-small", input=["a", "b"]).model_dump()
    )
    span = stack.wait_span(api_key.secret, trace_id)
    assert span["kind"] == "embedding"
    assert span["model"] == "text-embedding-3-small"
    assert span["response"]["usage"]["prompt_tokens"] == 6

    assert client.models.list().model_dump() == direct.models.list().model_dump()
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")
    assert (
        completion.model_dump()
        == direct.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello").model_dump()
    )
    upload = client.files.create(file=("upload.jsonl", b'{"a": 1}\n'), purpose="batch")
    assert (
        upload.model_dump()
        == direct.files.create(file=("upload.jsonl", b'{"a": 1}\n'), purpose="batch").model_dump()
    )
    assert stack.state.requests[-1]["headers"]["Content-Type"].startswith("multipart/form-data")

    # Any other path passes through (query string included) and is traced as a generic span.
    response = httpx.get(
        f"{stack.base}/v1/proxy/openai/batches/batch_1?limit=2",
        headers={"X-Untrace-Key": api_key.secret, "Authorization": "Bearer sk-x"},
    )
    assert response.status_code == 200
    assert response.json() == {"method": "GET", "path": "/v1/batches/batch_1", "query": "limit=2"}
    generic = stack.wait_span(api_key.secret, response.headers["x-untrace-trace-id"])
    assert generic["kind"] == "span"
    assert generic["name"] == "openai.batches.batch_1"
    assert generic["attributes"]["http.method"] == "GET"

    def all_stored() -> bool:
        return len(stack.spans(api_key.secret)) == 5

    assert wait_for(all_stored, timeout=10)


def test_upstream_errors_pass_through_and_are_error_spans(stack, api_key, traceparent):
    header, trace_id, _ = traceparent
    for status in (400, 429):
        with pytest.raises(openai.APIStatusError) as proxied:
            stack.openai(api_key.secret, traceparent=header).chat.completions.create(
                model=f"error-{status}", messages=MESSAGES
            )
        with pytest.raises(openai.APIStatusError) as direct:
            stack.openai_direct().chat.completions.create(model=f"error-{status}", messages=MESSAGES)
        assert proxied.value.status_code == direct.value.status_code == status
        assert proxied.value.response.content == direct.value.response.content
        assert proxied.value.response.headers.get("retry-after") == direct.value.response.headers.get(
            "retry-after"
        )

    def both() -> bool:
        return len(stack.spans(api_key.secret, trace_id=trace_id)) == 2

    assert wait_for(both, timeout=10)
    spans = stack.spans(api_key.secret, trace_id=trace_id, status="error")
    assert sorted(s["error"]["type"] for s in spans) == ["invalid_request_error", "rate_limit_exceeded"]
    assert {s["error"]["message"] for s in spans} == {"Fake error 400.", "Fake error 429."}
    assert {s["attributes"]["http.status_code"] for s in spans} == {400, 429}


def test_retryable_failures_are_retried_before_the_first_byte(stack, api_key):
    headers = {"X-Fake-Fail-Times": "2", "X-Fake-Key": "retry-1"}
    raw = stack.openai(api_key.secret, **headers).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == "Hello from the fake!"
    assert stack.wait_span(api_key.secret, raw.headers["x-untrace-trace-id"])["status"] == "ok"
    assert stack.state.failures["retry-1"] == 2
    assert 'untrace_proxy_upstream_retries_total{provider="openai",reason="503"} 2.0' in stack.metrics()


def test_anthropic_messages_are_identical_and_traced(stack, api_key):
    kwargs = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": MESSAGES,
    }
    raw = stack.anthropic(api_key.secret).messages.with_raw_response.create(**kwargs)
    assert raw.parse().model_dump() == stack.anthropic_direct().messages.create(**kwargs).model_dump()
    span = stack.wait_span(api_key.secret, raw.headers["x-untrace-trace-id"])
    assert span["name"] == "anthropic.messages"
    assert span["provider"] == "anthropic"
    assert span["model"] == "claude-haiku-4-5"
    assert span["request"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert span["response"]["content"] == "Hello from the fake!"
    assert span["response"]["finish_reason"] == "end_turn"
    assert span["response"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert span["metrics"]["estimated_cost"] > 0


def test_anthropic_stream_is_identical_and_traced(stack, api_key):
    kwargs = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": MESSAGES, "stream": True}
    with stack.anthropic(api_key.secret).messages.with_streaming_response.create(**kwargs) as raw:
        trace_id = raw.headers["x-untrace-trace-id"]
        proxied = [event.model_dump() for event in raw.parse()]
    direct = [event.model_dump() for event in stack.anthropic_direct().messages.create(**kwargs)]
    assert proxied == direct
    assert [e["type"] for e in proxied][:2] == ["message_start", "content_block_start"]

    span = stack.wait_span(api_key.secret, trace_id)
    assert span["response"]["content"] == "Hello from the fake!"
    assert span["response"]["finish_reason"] == "end_turn"
    assert span["response"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert span["metrics"]["time_to_first_token_ms"] >= 0


def test_anthropic_error_passes_through(stack, api_key):
    kwargs = {"model": "error-400", "max_tokens": 8, "messages": MESSAGES}
    with pytest.raises(anthropic.APIStatusError) as proxied:
        stack.anthropic(api_key.secret).messages.create(**kwargs)
    with pytest.raises(anthropic.APIStatusError) as direct:
        stack.anthropic_direct().messages.create(**kwargs)
    assert proxied.value.status_code == direct.value.status_code == 400
    assert proxied.value.response.content == direct.value.response.content

    assert wait_for(lambda: len(stack.spans(api_key.secret)) == 1, timeout=10)
    (span,) = stack.spans(api_key.secret)  # only the proxied call is traced
    assert (span["status"], span["error"]["type"]) == ("error", "invalid_request_error")


@pytest.mark.parametrize(
    ("path", "key", "status", "code"),
    [
        ("openai/chat/completions", None, 401, "missing_key"),
        ("openai/chat/completions", "ut_" + "a" * 12 + "_" + "b" * 40, 401, "invalid_key"),
        ("openai/chat/completions", "no-scope", 403, "missing_scope"),
        ("mistral/chat/completions", "valid", 404, "not_found"),
        ("openai", "valid", 404, "not_found"),
    ],
)
def test_bad_input_is_refused_before_anything_goes_upstream(stack, api_key, path, key, status, code):
    if key == "valid":
        key = api_key.secret
    elif key == "no-scope":
        key = ApiKeyFactory(project=api_key.project, scopes=["ingest", "read"]).secret
    before = len(stack.state.requests)
    headers = {"Content-Type": "application/json", **({"X-Untrace-Key": key} if key else {})}
    response = httpx.post(f"{stack.base}/v1/proxy/{path}", content=b"{}", headers=headers, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert len(stack.state.requests) == before


def test_client_disconnect_before_the_answer_cancels_the_upstream_call_and_is_traced(
    stack, api_key, traceparent
):
    header, trace_id, _ = traceparent
    abandoned = stack.state.hangs_abandoned
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{stack.base}/v1/proxy/openai/chat/completions",
            content=orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}),
            headers={
                "Content-Type": "application/json",
                "X-Untrace-Key": api_key.secret,
                "traceparent": header,
                "x-fake-hang-ms": "1500",
            },
            timeout=httpx.Timeout(10, read=0.3),  # the client gives up and closes the connection
        )
    assert wait_for(lambda: stack.state.hangs_abandoned == abandoned + 1, timeout=5)
    span = stack.wait_span(api_key.secret, trace_id)
    assert span["status"] == "error"
    assert span["error"]["type"] == "client_disconnected"


def test_client_disconnect_mid_stream_closes_upstream_and_is_traced(stack, api_key, traceparent):
    header, trace_id, _ = traceparent
    body = orjson.dumps({"model": "slow-stream", "messages": MESSAGES, "stream": True})
    cut_before = stack.state.streams_cut
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{stack.base}/v1/proxy/openai/chat/completions",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Untrace-Key": api_key.secret,
                "traceparent": header,
            },
        ) as response,
    ):
        for i, _ in enumerate(response.iter_raw()):
            if i == 2:
                break
    assert wait_for(lambda: stack.state.streams_cut == cut_before + 1, timeout=5)
    span = stack.wait_span(api_key.secret, trace_id)
    assert span["status"] == "error"
    assert span["error"]["type"] == "client_disconnected"
    assert span["response"]["content"].startswith("Hello")
