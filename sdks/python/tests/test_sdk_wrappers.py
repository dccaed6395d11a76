"""Provider wrappers against stand-in clients shaped like the OpenAI and Anthropic SDKs."""

import asyncio
from types import SimpleNamespace as NS

import pytest

from untrace_sdk import Untrace, wrap_anthropic, wrap_openai


class Recording(Untrace):
    def __init__(self):
        super().__init__(api_key="ut_test", base_url="http://127.0.0.1:9", enabled=False)
        self.ended = []

    def _enqueue(self, span):
        self.ended.append(span.to_dict())


class Resource:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def create(self, **kwargs):
        self.calls.append(kwargs)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer(kwargs) if callable(self.answer) else self.answer


class AsyncResource(Resource):
    async def create(self, **kwargs):
        return Resource.create(self, **kwargs)


class DecoratedAsyncResource(Resource):
    """Like AsyncOpenAI: `create` is a plain function (a decorator's wrapper) returning a coroutine."""

    def create(self, **kwargs):
        async def call():
            return Resource.create(self, **kwargs)

        return call()


def _chat_result(model="gpt-4o-mini"):
    message = NS(
        role="assistant", content="Hello!", model_dump=lambda **_: {"role": "assistant", "content": "Hello!"}
    )
    return NS(
        model=model,
        choices=[NS(message=message, finish_reason="stop")],
        usage=NS(prompt_tokens=12, completion_tokens=5, total_tokens=17),
    )


def _chunk(content=None, finish=None, usage=None, choices=True):
    choice = (
        [NS(index=0, delta=NS(content=content, tool_calls=None), finish_reason=finish)] if choices else []
    )
    return NS(model="gpt-4o-mini", choices=choice, usage=usage)


class FakeStream:
    def __init__(self, chunks):
        self.chunks = chunks
        self.closed = False

    def __iter__(self):
        yield from self.chunks

    def close(self):
        self.closed = True


def _openai(chat_answer, embeddings_answer=None, responses_answer=None, cls=Resource):
    return NS(
        chat=NS(completions=cls(chat_answer)),
        embeddings=cls(embeddings_answer),
        responses=cls(responses_answer),
    )


@pytest.fixture
def untrace():
    return Recording()


def test_chat_completion_is_an_llm_span_with_usage(untrace):
    client = wrap_openai(_openai(_chat_result()), untrace)
    messages = [{"role": "user", "content": "hi"}]
    with untrace.span("root") as root:
        result = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)
    assert result.choices[0].message.content == "Hello!"
    llm = untrace.ended[0]
    assert llm["kind"] == "llm" and llm["provider"] == "openai" and llm["model"] == "gpt-4o-mini"
    assert llm["parent_id"] == root.id and llm["trace_id"] == root.trace_id
    assert llm["request"] == {"messages": messages, "parameters": {"temperature": 0.2}}
    assert llm["response"]["content"] == "Hello!" and llm["response"]["finish_reason"] == "stop"
    assert llm["response"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def test_wrapping_twice_records_once(untrace):
    client = wrap_openai(wrap_openai(_openai(_chat_result()), untrace), untrace)
    client.chat.completions.create(model="m", messages=[])
    assert len(untrace.ended) == 1


def test_streaming_measures_ttft_and_takes_usage_from_the_last_chunk(untrace):
    usage = NS(prompt_tokens=12, completion_tokens=5, total_tokens=17)
    chunks = [
        _chunk(""),
        _chunk("Hel"),
        _chunk("lo"),
        _chunk(finish="stop"),
        _chunk(usage=usage, choices=False),
    ]
    stream = FakeStream(chunks)
    client = wrap_openai(_openai(stream), untrace)
    out = client.chat.completions.create(
        model="gpt-4o-mini", messages=[], stream=True, stream_options={"include_usage": True}
    )
    assert untrace.ended == []  # the span ends with the stream
    assert list(out) == chunks
    llm = untrace.ended[0]
    assert llm["response"]["content"] == "Hello" and llm["response"]["finish_reason"] == "stop"
    assert llm["response"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert llm["metrics"]["time_to_first_token_ms"] >= 0
    assert llm["request"]["parameters"] == {"stream_options": {"include_usage": True}}


def test_streaming_without_usage_leaves_usage_absent(untrace):
    client = wrap_openai(_openai(FakeStream([_chunk("Hi"), _chunk(finish="stop")])), untrace)
    with client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True) as stream:
        for _ in stream:
            pass
    llm = untrace.ended[0]
    assert llm["response"]["content"] == "Hi" and "usage" not in llm["response"]


def test_a_stream_closed_early_still_ends_the_span(untrace):
    stream = FakeStream([_chunk("a"), _chunk("b"), _chunk("c")])
    client = wrap_openai(_openai(stream), untrace)
    out = client.chat.completions.create(model="m", messages=[], stream=True)
    next(out)
    out.close()
    assert stream.closed and untrace.ended[0]["response"]["content"] == "a"


def test_a_stream_failing_midway_records_the_error(untrace):
    def broken():
        yield _chunk("a")
        raise ConnectionError("cut")

    client = wrap_openai(_openai(broken()), untrace)
    out = client.chat.completions.create(model="m", messages=[], stream=True)
    with pytest.raises(ConnectionError):
        list(out)
    assert untrace.ended[0]["error"]["type"] == "ConnectionError"


def test_provider_errors_are_recorded_and_re_raised(untrace):
    client = wrap_openai(_openai(ValueError("rate limited")), untrace)
    with pytest.raises(ValueError):
        client.chat.completions.create(model="m", messages=[])
    assert untrace.ended[0]["error"] == {
        "type": "ValueError",
        "message": "rate limited",
        "stack": untrace.ended[0]["error"]["stack"],
    }


def test_embeddings_and_responses(untrace):
    embeddings = NS(
        model="text-embedding-3-small",
        data=[NS(embedding=[0.1, 0.2, 0.3])] * 2,
        usage=NS(prompt_tokens=6, total_tokens=6),
    )
    response = NS(
        model="gpt-4o",
        output_text="Done.",
        status="completed",
        usage=NS(input_tokens=7, output_tokens=2, total_tokens=9),
    )
    client = wrap_openai(_openai(None, embeddings, response), untrace)
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    client.responses.create(model="gpt-4o", input="Do it", instructions="Be brief")
    emb, resp = untrace.ended
    assert emb["kind"] == "embedding" and emb["model"] == "text-embedding-3-small"
    assert emb["response"]["usage"] == {"prompt_tokens": 6, "completion_tokens": 0, "total_tokens": 6}
    assert emb["response"]["output"] == {"embeddings": 2, "dimensions": 3}
    assert resp["request"]["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Do it"},
    ]
    assert resp["response"]["content"] == "Done."
    assert resp["response"]["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


def test_responses_stream(untrace):
    events = [
        NS(type="response.created"),
        NS(type="response.output_text.delta", delta="Do"),
        NS(type="response.output_text.delta", delta="ne"),
        NS(
            type="response.completed",
            response=NS(
                model="gpt-4o", status="completed", usage=NS(input_tokens=1, output_tokens=2, total_tokens=3)
            ),
        ),
    ]
    client = wrap_openai(_openai(None, None, FakeStream(events)), untrace)
    list(client.responses.create(model="gpt-4o", input="x", stream=True))
    span = untrace.ended[0]
    assert span["response"]["content"] == "Done" and span["response"]["usage"]["total_tokens"] == 3
    assert "time_to_first_token_ms" in span["metrics"]


@pytest.mark.parametrize("cls", [AsyncResource, DecoratedAsyncResource])
def test_async_client_and_async_stream(untrace, cls):
    class AsyncFakeStream:
        def __init__(self, chunks):
            self.chunks = chunks

        async def __aiter__(self):
            for chunk in self.chunks:
                yield chunk

        async def close(self):
            pass

    client = wrap_openai(_openai(_chat_result(), cls=cls), untrace)

    async def main():
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])
        client.chat.completions.answer = AsyncFakeStream([_chunk("x"), _chunk(finish="stop")])
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
        return [c async for c in stream]

    assert len(asyncio.run(main())) == 2
    plain, streamed = untrace.ended
    assert plain["response"]["usage"]["total_tokens"] == 17
    assert streamed["response"]["content"] == "x" and "time_to_first_token_ms" in streamed["metrics"]


def test_anthropic_messages_and_stream(untrace):
    result = NS(
        model="claude-haiku-4-5",
        content=[
            NS(type="text", text="Hi there", model_dump=lambda **_: {"type": "text", "text": "Hi there"})
        ],
        stop_reason="end_turn",
        usage=NS(input_tokens=10, output_tokens=5),
    )
    events = [
        NS(
            type="message_start",
            message=NS(model="claude-haiku-4-5", usage=NS(input_tokens=10, output_tokens=1)),
        ),
        NS(type="content_block_start"),
        NS(type="content_block_delta", delta=NS(type="text_delta", text="Hi")),
        NS(type="content_block_delta", delta=NS(type="text_delta", text=" there")),
        NS(type="message_delta", delta=NS(stop_reason="end_turn"), usage=NS(output_tokens=5)),
        NS(type="message_stop"),
    ]
    messages = Resource(result)
    client = wrap_anthropic(NS(messages=messages), untrace)
    client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        system="Be kind",
        messages=[{"role": "user", "content": "hey"}],
    )
    messages.answer = FakeStream(events)
    list(client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=[], stream=True))
    plain, streamed = untrace.ended
    assert plain["provider"] == "anthropic" and plain["request"]["messages"][0] == {
        "role": "system",
        "content": "Be kind",
    }
    assert plain["request"]["parameters"] == {"max_tokens": 100}
    assert plain["response"]["content"] == "Hi there" and plain["response"]["finish_reason"] == "end_turn"
    for span in (plain, streamed):
        assert span["response"]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert streamed["response"]["content"] == "Hi there" and streamed["model"] == "claude-haiku-4-5"
    assert "time_to_first_token_ms" in streamed["metrics"]
