"""Instrumentation of the OpenAI and Anthropic Python clients: each call is an `llm` (or `embedding`) span."""

from __future__ import annotations

import abc
import functools
import inspect
import time
from typing import Any

from ._client import Untrace, get_client
from ._span import Span

__all__ = ["wrap_anthropic", "wrap_openai"]

_NOT_PARAMETERS = frozenset(
    {
        "messages",
        "model",
        "stream",
        "input",
        "instructions",
        "system",
        "extra_headers",
        "extra_query",
        "extra_body",
        "timeout",
    }
)
_MARK = "_untrace_wrapped"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:  # noqa: BLE001 - keep the object; the sender encodes what it can
            return value
    return value


def _parameters(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in kwargs.items() if k not in _NOT_PARAMETERS and v is not None}


class _Collector(abc.ABC):
    """What a call records: its request, its response, and for streams the chunks as they pass."""

    def __init__(self, span: Span, started: float) -> None:
        self.span = span
        self.started = started
        self.first_token: float | None = None
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.usage: tuple[int | None, int | None, int | None] | None = None

    def token(self) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()

    @abc.abstractmethod
    def request(self, kwargs: dict[str, Any]) -> None:
        """Record what the call was asked."""

    @abc.abstractmethod
    def result(self, result: Any) -> None:
        """Record a complete answer."""

    @abc.abstractmethod
    def chunk(self, chunk: Any) -> None:
        """Record one streamed chunk."""

    def finish_stream(self) -> None:
        span = self.span
        if self.model:
            span.set_model(self.model)
        span.set_output(content="".join(self.parts), finish_reason=self.finish_reason)
        if self.usage is not None:
            span.set_usage(*self.usage)
        if self.first_token is not None:
            span.set_metrics(time_to_first_token_ms=round((self.first_token - self.started) * 1000, 3))


class _OpenAIChat(_Collector):
    def request(self, kwargs: dict[str, Any]) -> None:
        self.span.set_input(
            messages=[_plain(m) for m in kwargs.get("messages") or []], parameters=_parameters(kwargs)
        )

    def result(self, result: Any) -> None:
        span = self.span
        span.set_model(_get(result, "model") or span.fields.get("model"))
        choices = _get(result, "choices") or []
        if choices:
            message = _get(choices[0], "message")
            content = _get(message, "content")
            span.set_output(
                content=content if isinstance(content, str) else None,
                messages=[_plain(_get(c, "message")) for c in choices],
                finish_reason=_get(choices[0], "finish_reason"),
            )
        usage = _get(result, "usage")
        if usage is not None:
            span.set_usage(
                _get(usage, "prompt_tokens"), _get(usage, "completion_tokens"), _get(usage, "total_tokens")
            )

    def chunk(self, chunk: Any) -> None:
        self.model = _get(chunk, "model") or self.model
        for choice in _get(chunk, "choices") or []:
            delta = _get(choice, "delta")
            content = _get(delta, "content")
            if content:
                self.token()
                if _get(choice, "index", 0) == 0:
                    self.parts.append(content)
            elif _get(delta, "tool_calls"):
                self.token()
            if _get(choice, "finish_reason"):
                self.finish_reason = _get(choice, "finish_reason")
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = (
                _get(usage, "prompt_tokens"),
                _get(usage, "completion_tokens"),
                _get(usage, "total_tokens"),
            )


class _OpenAIEmbeddings(_Collector):
    def request(self, kwargs: dict[str, Any]) -> None:
        value = kwargs.get("input")
        if isinstance(value, str):
            self.span.set_input(prompt=value, parameters=_parameters(kwargs))
        else:
            self.span.set_input({"input": value}, parameters=_parameters(kwargs))

    def result(self, result: Any) -> None:
        span = self.span
        span.set_model(_get(result, "model") or span.fields.get("model"))
        data = _get(result, "data") or []
        vector = _get(data[0], "embedding") if data else None
        span.set_output({"embeddings": len(data), "dimensions": len(vector) if vector is not None else None})
        usage = _get(result, "usage")
        if usage is not None:
            prompt = _get(usage, "prompt_tokens")
            span.set_usage(prompt, 0, _get(usage, "total_tokens") or prompt)

    def chunk(self, chunk: Any) -> None:  # embeddings do not stream
        pass


class _OpenAIResponses(_Collector):
    def request(self, kwargs: dict[str, Any]) -> None:
        value = kwargs.get("input")
        messages: list[Any] = []
        if kwargs.get("instructions"):
            messages.append({"role": "system", "content": kwargs["instructions"]})
        if isinstance(value, str):
            messages.append({"role": "user", "content": value})
        elif isinstance(value, list):
            messages.extend(
                m if isinstance(m, dict) and "role" in m else {"role": "user", "content": _plain(m)}
                for m in map(_plain, value)
            )
        self.span.set_input(messages=messages, parameters=_parameters(kwargs))

    def _usage(self, usage: Any) -> tuple[int | None, int | None, int | None] | None:
        if usage is None:
            return None
        return _get(usage, "input_tokens"), _get(usage, "output_tokens"), _get(usage, "total_tokens")

    def result(self, result: Any) -> None:
        span = self.span
        span.set_model(_get(result, "model") or span.fields.get("model"))
        text = _get(result, "output_text")
        span.set_output(content=text if isinstance(text, str) else None)
        status = _get(result, "status")
        if status:
            span.set_output(finish_reason=str(status))
        usage = self._usage(_get(result, "usage"))
        if usage is not None:
            span.set_usage(*usage)

    def chunk(self, chunk: Any) -> None:
        kind = _get(chunk, "type")
        if kind == "response.output_text.delta":
            self.token()
            self.parts.append(_get(chunk, "delta") or "")
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = _get(chunk, "response")
            self.model = _get(response, "model") or self.model
            self.finish_reason = _get(response, "status") or self.finish_reason
            self.usage = self._usage(_get(response, "usage")) or self.usage


class _AnthropicMessages(_Collector):
    def __init__(self, span: Span, started: float) -> None:
        super().__init__(span, started)
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def request(self, kwargs: dict[str, Any]) -> None:
        messages = [_plain(m) for m in kwargs.get("messages") or []]
        system = kwargs.get("system")
        if system:
            messages.insert(0, {"role": "system", "content": _plain(system)})
        self.span.set_input(messages=messages, parameters=_parameters(kwargs))

    def result(self, result: Any) -> None:
        span = self.span
        span.set_model(_get(result, "model") or span.fields.get("model"))
        blocks = _get(result, "content") or []
        text = "".join(_get(b, "text") or "" for b in blocks if _get(b, "type") == "text")
        span.set_output(
            content=text,
            messages=[{"role": "assistant", "content": [_plain(b) for b in blocks]}],
            finish_reason=_get(result, "stop_reason"),
        )
        usage = _get(result, "usage")
        if usage is not None:
            span.set_usage(_get(usage, "input_tokens"), _get(usage, "output_tokens"))

    def chunk(self, chunk: Any) -> None:
        kind = _get(chunk, "type")
        if kind == "message_start":
            message = _get(chunk, "message")
            self.model = _get(message, "model") or self.model
            usage = _get(message, "usage")
            self.input_tokens = _get(usage, "input_tokens", self.input_tokens)
            self.output_tokens = _get(usage, "output_tokens", self.output_tokens)
        elif kind == "content_block_delta":
            delta = _get(chunk, "delta")
            text = _get(delta, "text")
            if text:
                self.parts.append(text)
            self.token()
        elif kind == "message_delta":
            self.finish_reason = _get(_get(chunk, "delta"), "stop_reason") or self.finish_reason
            usage = _get(chunk, "usage")
            self.output_tokens = _get(usage, "output_tokens", self.output_tokens)
            if _get(usage, "input_tokens") is not None:
                self.input_tokens = _get(usage, "input_tokens")
        if self.input_tokens is not None or self.output_tokens is not None:
            self.usage = (self.input_tokens, self.output_tokens, None)


class _SyncStream:
    """Passes a provider stream through, recording chunks; the span ends with the stream."""

    def __init__(self, stream: Any, collector: _Collector) -> None:
        self._stream = stream
        self._iterator = iter(stream)
        self._collector = collector
        self._done = False

    def _finish(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        _safely(self._collector.finish_stream)
        if error is not None:
            self._collector.span.record_exception(error)
        self._collector.span.end()

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        _safely(self._collector.chunk, chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(None)

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _AsyncStream:
    def __init__(self, stream: Any, collector: _Collector) -> None:
        self._stream = stream
        self._iterator = stream.__aiter__()
        self._collector = collector
        self._done = False

    _finish = _SyncStream._finish

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        _safely(self._collector.chunk, chunk)
        return chunk

    async def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result
        finally:
            self._finish(None)

    aclose = close

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _safely(fn: Any, *args: Any) -> None:
    """Recording never breaks the application's call."""
    try:
        fn(*args)
    except Exception:  # a response shape we did not expect: record less
        import logging

        logging.getLogger("untrace_sdk").debug("untrace: could not record a response", exc_info=True)


def _patch(
    resource: Any,
    untrace: Untrace | None,
    collector_class: type[_Collector],
    name: str,
    kind: str,
    provider: str,
) -> None:
    if resource is None or getattr(resource, _MARK, False):
        return
    original = resource.create

    def begin(kwargs: dict[str, Any]) -> _Collector:
        client = untrace or get_client()
        span = client.span(name, kind, provider=provider, model=kwargs.get("model"))
        collector = collector_class(span, time.perf_counter())
        _safely(collector.request, kwargs)
        return collector

    def failed(collector: _Collector, exc: BaseException) -> None:
        collector.span.record_exception(exc)
        collector.span.end()

    def done(collector: _Collector, result: Any, stream: bool) -> Any:
        if stream:
            if hasattr(result, "__aiter__"):
                return _AsyncStream(result, collector)
            if hasattr(result, "__iter__"):
                return _SyncStream(result, collector)
        _safely(collector.result, result)
        collector.span.end()
        return result

    async def finish(collector: _Collector, pending: Any, stream: bool) -> Any:
        try:
            result = await pending
        except BaseException as exc:
            failed(collector, exc)
            raise
        return done(collector, result, stream)

    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_create(*args: Any, **kwargs: Any) -> Any:
            collector = begin(kwargs)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                failed(collector, exc)
                raise
            return done(collector, result, bool(kwargs.get("stream")))

        resource.create = async_create
    else:

        @functools.wraps(original)
        def create(*args: Any, **kwargs: Any) -> Any:
            collector = begin(kwargs)
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                failed(collector, exc)
                raise
            if inspect.isawaitable(result):  # an async client whose method is wrapped by a decorator
                return finish(collector, result, bool(kwargs.get("stream")))
            return done(collector, result, bool(kwargs.get("stream")))

        resource.create = create
    setattr(resource, _MARK, True)


def wrap_openai(client: Any, untrace: Untrace | None = None) -> Any:
    """Record ``chat.completions.create`` (streaming included), ``embeddings.create`` and
    ``responses.create`` of an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client; returns the client.

    Spans are children of the current span and go to ``untrace`` (default: the default client)."""
    chat = getattr(client, "chat", None)
    _patch(
        getattr(chat, "completions", None), untrace, _OpenAIChat, "openai.chat.completions", "llm", "openai"
    )
    _patch(
        getattr(client, "embeddings", None),
        untrace,
        _OpenAIEmbeddings,
        "openai.embeddings",
        "embedding",
        "openai",
    )
    _patch(getattr(client, "responses", None), untrace, _OpenAIResponses, "openai.responses", "llm", "openai")
    return client


def wrap_anthropic(client: Any, untrace: Untrace | None = None) -> Any:
    """Record ``messages.create`` (streaming included) of an ``anthropic.Anthropic`` or
    ``anthropic.AsyncAnthropic`` client; returns the client."""
    _patch(
        getattr(client, "messages", None),
        untrace,
        _AnthropicMessages,
        "anthropic.messages",
        "llm",
        "anthropic",
    )
    return client
