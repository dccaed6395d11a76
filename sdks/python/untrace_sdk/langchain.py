"""LangChain callbacks: chains, chat models and LLMs, tools and retrievers as nested Untrace spans.

Needs ``langchain-core`` (imported here only: ``import untrace_sdk`` does not load LangChain)::

    from untrace_sdk.langchain import UntraceCallbackHandler

    chain.invoke(inputs, config={"callbacks": [UntraceCallbackHandler()]})
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ._client import Untrace, get_client
from ._span import Span, _current

__all__ = ["UntraceCallbackHandler"]

logger = logging.getLogger("untrace_sdk")

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
    "HumanMessageChunk": "user",
    "AIMessageChunk": "assistant",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
    "FunctionMessageChunk": "function",
}
_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")
_NOT_PARAMETERS = frozenset({"messages", "stream", "_type", "responses", "callbacks", "tags", "metadata"})
_MAX_DEPTH = 8


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-able copy of LangChain values: messages and documents become plain dicts."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth >= _MAX_DEPTH:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "page_content"):
        return _document(value)
    if hasattr(value, "content") and hasattr(value, "type"):
        return _message(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _jsonable(dump(mode="json"), depth + 1)
        except Exception:  # noqa: BLE001 - fall back to the text form
            return repr(value)
    return repr(value)


def _message(message: Any) -> dict[str, Any]:
    """A LangChain message as a chat message ``{"role", "content", ...}``."""
    kind = getattr(message, "type", None)
    role = (
        getattr(message, "role", None)
        if kind in ("chat", "ChatMessageChunk")
        else _ROLES.get(str(kind), str(kind))
    )
    doc: dict[str, Any] = {"role": role or "user", "content": _jsonable(getattr(message, "content", ""))}
    name = getattr(message, "name", None)
    if name:
        doc["name"] = name
    tool_calls = getattr(message, "tool_calls", None)
    if tool_calls:
        doc["tool_calls"] = _jsonable(tool_calls)
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id:
        doc["tool_call_id"] = tool_call_id
    return doc


def _document(document: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"page_content": getattr(document, "page_content", "")}
    metadata = getattr(document, "metadata", None)
    if metadata:
        doc["metadata"] = _jsonable(metadata)
    if getattr(document, "id", None):
        doc["id"] = str(document.id)
    return doc


def _name(serialized: dict[str, Any] | None, kwargs: dict[str, Any], default: str) -> str:
    if kwargs.get("name"):
        return str(kwargs["name"])
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ident = serialized.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return default


def _model(serialized: dict[str, Any] | None, params: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    for key in _MODEL_KEYS:
        if params.get(key):
            return str(params[key])
    if metadata.get("ls_model_name"):
        return str(metadata["ls_model_name"])
    init = (serialized or {}).get("kwargs")
    if isinstance(init, dict):
        for key in _MODEL_KEYS:
            if isinstance(init.get(key), str) and init[key]:
                return init[key]
    return None


def _usage(response: Any) -> tuple[int | None, int | None, int | None] | None:
    """``llm_output["token_usage"]`` (OpenAI style), else the generations' ``usage_metadata`` summed."""
    llm_output = getattr(response, "llm_output", None) or {}
    usage = llm_output.get("token_usage") or llm_output.get("usage")
    if isinstance(usage, dict) and usage:
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        if prompt is not None or completion is not None:
            return prompt, completion, usage.get("total_tokens")
    totals = [0, 0, 0]
    found = False
    for generations in getattr(response, "generations", None) or []:
        for generation in generations:
            meta = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if meta:
                found = True
                totals[0] += int(meta.get("input_tokens") or 0)
                totals[1] += int(meta.get("output_tokens") or 0)
                totals[2] += int(meta.get("total_tokens") or 0)
    return (totals[0], totals[1], totals[2] or None) if found else None


class UntraceCallbackHandler(BaseCallbackHandler):
    """Records LangChain runs as Untrace spans, nested by ``run_id`` / ``parent_run_id``.

    Chains are ``chain`` spans (``agent`` when their name says agent), LLM and chat
    model calls ``llm`` spans (model, input messages or prompts, output, usage, time to
    first token when streaming), tools ``tool`` spans and retrievers ``retrieval``
    spans with the documents as output. Errors are recorded on their run's span; the
    exception itself is left to LangChain. A run with no known parent is a child of the
    SDK span current where LangChain runs (``with untrace.span(...)``), or starts a trace.
    Ended spans go to ``untrace`` (default: the default client)."""

    run_inline = True  # recording only queues spans: no need for an executor in async runs

    def __init__(self, untrace: Untrace | None = None, *, capture_content: bool = True) -> None:
        super().__init__()
        self._untrace = untrace
        self.capture_content = capture_content
        self._spans: dict[UUID, Span] = {}
        self._first_token: dict[UUID, float] = {}
        self._started: dict[UUID, float] = {}
        self._lock = threading.Lock()

    # -- span bookkeeping ----------------------------------------------------------------------

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        kind: str,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
    ) -> Span:
        client = self._untrace or get_client()
        with self._lock:
            parent = self._spans.get(parent_run_id) if parent_run_id is not None else None
        span = client.span(name, kind, parent=parent if parent is not None else _current.get())
        span.set_metadata(langchain_run_id=str(run_id))
        if tags:
            span.set_metadata(langchain_tags=list(tags))
        extra = {k: _jsonable(v) for k, v in (metadata or {}).items() if not str(k).startswith("ls_")}
        if extra:
            span.set_metadata(extra)
        with self._lock:
            self._spans[run_id] = span
        return span

    def _pop(self, run_id: UUID) -> Span | None:
        with self._lock:
            self._first_token.pop(run_id, None)
            self._started.pop(run_id, None)
            return self._spans.pop(run_id, None)

    def _fail(self, run_id: UUID, error: BaseException) -> None:
        span = self._pop(run_id)
        if span is not None:
            span.record_exception(error)
            span.end()

    def _output(self, span: Span, value: Any) -> None:
        if not self.capture_content:
            return
        if hasattr(value, "content") and hasattr(value, "type"):  # a message: its content and the message
            message = _message(value)
            content = message.get("content")
            span.set_output(content=content if isinstance(content, str) else None, messages=[message])
        else:
            span.set_output(_jsonable(value))

    # -- chains -------------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs, "chain")
        kind = "agent" if "agent" in name.lower() else "chain"
        span = self._start(run_id, parent_run_id, name, kind, tags, metadata)
        if self.capture_content:
            span.set_input(_jsonable(inputs))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._pop(run_id)
        if span is not None:
            self._output(span, outputs)
            span.end()

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    # -- LLMs and chat models --------------------------------------------------------------------

    def _start_llm(
        self,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> tuple[Span, dict[str, Any] | None]:
        params = kwargs.get("invocation_params") or {}
        meta = metadata or {}
        span = self._start(run_id, parent_run_id, _name(serialized, kwargs, "llm"), "llm", tags, metadata)
        span.set_model(_model(serialized, params, meta), meta.get("ls_provider"))
        parameters = {
            k: _jsonable(v) for k, v in params.items() if k not in _NOT_PARAMETERS and k not in _MODEL_KEYS
        } or None
        with self._lock:
            self._started[run_id] = time.perf_counter()
        return span, parameters

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        span, parameters = self._start_llm(serialized, run_id, parent_run_id, tags, metadata, kwargs)
        if self.capture_content:
            batch = messages[0] if len(messages) == 1 else [m for group in messages for m in group]
            span.set_input(messages=[_message(m) for m in batch], parameters=parameters)
        else:
            span.set_input(parameters=parameters)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        span, parameters = self._start_llm(serialized, run_id, parent_run_id, tags, metadata, kwargs)
        if self.capture_content:
            if len(prompts) == 1:
                span.set_input(prompt=prompts[0], parameters=parameters)
            else:
                span.set_input({"prompts": list(prompts)}, parameters=parameters)
        else:
            span.set_input(parameters=parameters)

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            if run_id in self._spans and run_id not in self._first_token:
                self._first_token[run_id] = time.perf_counter()

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            first, started = self._first_token.get(run_id), self._started.get(run_id)
        span = self._pop(run_id)
        if span is None:
            return
        try:
            self._record_llm_result(span, response)
            if first is not None and started is not None:
                span.set_metrics(time_to_first_token_ms=round((first - started) * 1000, 3))
        except Exception:  # a result shape we did not expect: record less, never fail the run
            logger.debug("untrace: could not record a LangChain result", exc_info=True)
        span.end()

    def _record_llm_result(self, span: Span, response: Any) -> None:
        generations = [g for group in getattr(response, "generations", None) or [] for g in group]
        first = generations[0] if generations else None
        info = getattr(first, "generation_info", None) or {}
        message = getattr(first, "message", None)
        response_meta = getattr(message, "response_metadata", None) or {}
        finish = (
            info.get("finish_reason")
            or response_meta.get("finish_reason")
            or response_meta.get("stop_reason")
        )
        llm_output = getattr(response, "llm_output", None) or {}
        model = llm_output.get("model_name") or llm_output.get("model") or response_meta.get("model_name")
        if model:
            span.set_model(str(model))
        if self.capture_content and first is not None:
            text = getattr(first, "text", None)
            messages = [_message(g.message) for g in generations if getattr(g, "message", None) is not None]
            span.set_output(
                content=text if isinstance(text, str) else None,
                messages=messages or None,
                finish_reason=str(finish) if finish else None,
            )
        elif finish:
            span.set_output(finish_reason=str(finish))
        usage = _usage(response)
        if usage is not None:
            span.set_usage(*usage)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    # -- tools --------------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        span = self._start(run_id, parent_run_id, _name(serialized, kwargs, "tool"), "tool", tags, metadata)
        if self.capture_content:
            span.set_input(_jsonable(inputs) if inputs is not None else input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        span = self._pop(run_id)
        if span is not None:
            self._output(span, output)
            span.end()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)

    # -- retrievers ---------------------------------------------------------------------------

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs, "retriever")
        span = self._start(run_id, parent_run_id, name, "retrieval", tags, metadata)
        if self.capture_content:
            span.set_input(query)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        span = self._pop(run_id)
        if span is not None:
            if self.capture_content:
                span.set_output({"documents": [_document(d) for d in documents]})
            span.set_metadata(documents=len(documents))
            span.end()

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._fail(run_id, error)
