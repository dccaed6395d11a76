"""Spans, the current-span context and W3C trace context."""

from __future__ import annotations

import contextlib
import random
import re
import time
import traceback
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import Untrace

__all__ = [
    "KINDS",
    "RemoteParent",
    "Span",
    "current_span",
    "from_traceparent",
    "new_span_id",
    "new_trace_id",
    "traceparent",
]

KINDS = frozenset({"llm", "embedding", "chain", "agent", "tool", "retrieval", "span"})

_random = random.Random()  # noqa: S311 - span ids only: not security sensitive
_getrandbits = _random.getrandbits
_time_ns = time.time_ns


def new_trace_id() -> str:
    """32 lower-case hex digits, never all zero (a valid W3C trace id)."""
    return f"{_getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    """16 lower-case hex digits, never all zero (a valid W3C parent id)."""
    return f"{_getrandbits(64) or 1:016x}"


class RemoteParent:
    """A parent span living in another process (from a `traceparent` header).

    Use it as a context manager, so spans started inside continue that trace,
    or pass it as ``parent=`` to ``Untrace.span``."""

    __slots__ = ("_token", "sampled", "span_id", "trace_id")

    def __init__(self, trace_id: str, span_id: str, sampled: bool = True) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self._token: Token | None = None

    @property
    def id(self) -> str:
        return self.span_id

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def __enter__(self) -> RemoteParent:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def __repr__(self) -> str:
        return f"RemoteParent({self.traceparent()!r})"


_current: ContextVar[Span | RemoteParent | None] = ContextVar("untrace_current_span", default=None)
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def current_span() -> Span | None:
    """The span active in this context (thread or task), if any."""
    span = _current.get()
    return span if isinstance(span, Span) else None


def traceparent() -> str | None:
    """The W3C `traceparent` header value of the current span (or remote parent), or None."""
    span = _current.get()
    return None if span is None else span.traceparent()


def from_traceparent(header: str | None) -> RemoteParent | None:
    """The remote parent a W3C `traceparent` header names; None when the header is absent or invalid."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return RemoteParent(trace_id, span_id, sampled=bool(int(flags, 16) & 1))


_ABSENT = object()


class Span:
    """One unit of work. Use as a context manager, or call ``end()``.

    Setters only record values; nothing is serialised or sent until the span
    ends, and then by the client's background thread."""

    __slots__ = (
        "_client",
        "_ended",
        "_token",
        "end_ns",
        "fields",
        "id",
        "kind",
        "name",
        "parent_id",
        "start_ns",
        "trace_id",
    )

    def __init__(
        self,
        client: Untrace | None,
        name: str,
        kind: str = "span",
        *,
        parent: Span | RemoteParent | None | object = _ABSENT,
        trace_id: str | None = None,
        span_id: str | None = None,
        start_ns: int | None = None,
    ) -> None:
        if parent is _ABSENT:
            parent = _current.get()
        self._client = client
        self.name = name
        self.kind = kind if kind in KINDS else "span"
        self.id = span_id or new_span_id()
        self.fields: dict[str, Any] = {}
        if parent is not None:
            self.trace_id = trace_id or parent.trace_id  # type: ignore[union-attr]
            self.parent_id = parent.id  # type: ignore[union-attr]
            if type(parent) is Span and parent.fields:
                inherited = parent.fields
                for key in ("session_id", "user_id"):
                    if key in inherited:
                        self.fields[key] = inherited[key]
        else:
            self.trace_id = trace_id or new_trace_id()
            self.parent_id = None
        self.start_ns = start_ns if start_ns is not None else _time_ns()
        self.end_ns: int | None = None
        self._ended = False
        self._token: Token | None = None

    # -- context -------------------------------------------------------------------------------

    def __enter__(self) -> Span:
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.record_exception(exc)
        token = self._token
        if token is not None:
            self._token = None
            with contextlib.suppress(ValueError):  # ended in another context (a generator closed elsewhere)
                _current.reset(token)
        self.end()

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def end(self, end_ns: int | None = None) -> None:
        """End the span and hand it to the client's queue; a second call does nothing."""
        if self._ended:
            return
        self._ended = True
        self.end_ns = end_ns if end_ns is not None else _time_ns()
        if self._client is not None:
            self._client._enqueue(self)

    @property
    def ended(self) -> bool:
        return self._ended

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.id}-01"

    # -- setters (each returns the span, so calls chain) ---------------------------------------------

    def _sub(self, key: str) -> dict[str, Any]:
        value = self.fields.get(key)
        if value is None:
            value = self.fields[key] = {}
        return value

    def set_input(
        self,
        value: Any = _ABSENT,
        *,
        messages: list[dict[str, Any]] | None = None,
        prompt: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Span:
        """The span's input: a list of chat messages, a prompt string, or any JSON-able value."""
        request = self._sub("request")
        if value is not _ABSENT:
            if isinstance(value, str):
                request["prompt"] = value
            elif _is_messages(value):
                request["messages"] = list(value)
            else:
                request["input"] = value
        if messages is not None:
            request["messages"] = list(messages)
        if prompt is not None:
            request["prompt"] = prompt
        if parameters is not None:
            request.setdefault("parameters", {}).update(parameters)
        return self

    def set_output(
        self,
        value: Any = _ABSENT,
        *,
        content: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
    ) -> Span:
        """The span's output: a string (content), a list of messages, or any JSON-able value."""
        response = self._sub("response")
        if value is not _ABSENT:
            if isinstance(value, str):
                response["content"] = value
            elif _is_messages(value):
                response["messages"] = list(value)
            else:
                response["output"] = value
        if content is not None:
            response["content"] = content
        if messages is not None:
            response["messages"] = list(messages)
        if finish_reason is not None:
            response["finish_reason"] = finish_reason
        return self

    def set_metadata(self, metadata: dict[str, Any] | None = None, **values: Any) -> Span:
        meta = self._sub("metadata")
        if metadata:
            meta.update(metadata)
        meta.update(values)
        return self

    def set_tags(self, tags: dict[str, Any] | None = None, **values: Any) -> Span:
        """String tags (``metadata.tags``); values are converted with ``str``."""
        current = self._sub("metadata").setdefault("tags", {})
        for key, value in {**(tags or {}), **values}.items():
            current[str(key)] = str(value)
        return self

    def set_user(self, user_id: str | None) -> Span:
        self.fields["user_id"] = None if user_id is None else str(user_id)
        return self

    def set_session(self, session_id: str | None) -> Span:
        self.fields["session_id"] = None if session_id is None else str(session_id)
        return self

    def set_model(self, model: str | None, provider: str | None = None) -> Span:
        self.fields["model"] = model
        if provider is not None:
            self.fields["provider"] = provider
        return self

    def set_provider(self, provider: str | None) -> Span:
        self.fields["provider"] = provider
        return self

    def set_usage(
        self,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        total_tokens: int | None = None,
    ) -> Span:
        usage = self._sub("response").setdefault("usage", {})
        if prompt_tokens is not None:
            usage["prompt_tokens"] = int(prompt_tokens)
        if completion_tokens is not None:
            usage["completion_tokens"] = int(completion_tokens)
        if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
            total_tokens = int(prompt_tokens) + int(completion_tokens)
        if total_tokens is not None:
            usage["total_tokens"] = int(total_tokens)
        return self

    def set_metrics(self, **metrics: float | None) -> Span:
        """``time_to_first_token_ms``, ``estimated_cost``, ...; None values are left out."""
        target = self._sub("metrics")
        target.update({k: v for k, v in metrics.items() if v is not None})
        return self

    def set_attribute(self, key: str, value: Any) -> Span:
        self._sub("attributes")[key] = value
        return self

    def set_error(self, type: str, message: str, stack: str | None = None) -> Span:  # noqa: A002
        error = {"type": type, "message": message}
        if stack:
            error["stack"] = stack
        self.fields["error"] = error
        return self

    def record_exception(self, exc: BaseException) -> Span:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return self.set_error(type(exc).__qualname__, str(exc), stack)

    def to_dict(self) -> dict[str, Any]:
        """The canonical span (times as RFC 3339 strings)."""
        doc: dict[str, Any] = {"id": self.id, "trace_id": self.trace_id}
        if self.parent_id is not None:
            doc["parent_id"] = self.parent_id
        doc["name"] = self.name
        doc["kind"] = self.kind
        doc["start_time"] = rfc3339(self.start_ns)
        if self.end_ns is not None:
            doc["end_time"] = rfc3339(self.end_ns)
        for key, value in self.fields.items():
            if value is not None and value != {}:
                doc[key] = value
        return doc

    def __repr__(self) -> str:
        return f"Span({self.name!r}, kind={self.kind!r}, id={self.id!r}, trace_id={self.trace_id!r})"


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(m, dict) and "role" in m for m in value)
    )


def rfc3339(ns: int) -> str:
    """Epoch nanoseconds as an RFC 3339 UTC string with microseconds."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"
