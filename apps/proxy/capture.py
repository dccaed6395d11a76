"""A proxied call as a canonical span: request and response bodies, streams included.

The request path only records raw bytes and timestamps (`ProxiedCall`); the
parsing below runs on the trace writer's thread, off the call's latency. A
stream is assembled from its server-sent events: content, tool calls, finish
reason and usage (the provider's when it sent one, otherwise counted at
store time), and the time to first token from when the first content chunk
arrived.
"""

from __future__ import annotations

import codecs
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from apps.proxy.headers import CallMetadata

_OPENAI_OPERATIONS = {
    "chat/completions": "chat",
    "completions": "completion",
    "embeddings": "embedding",
    "responses": "responses",
}
_ANTHROPIC_OPERATIONS = {"messages": "messages"}
_NOT_PARAMETERS = frozenset({"messages", "prompt", "model", "input", "system", "instructions"})


@dataclass(slots=True)
class ProxiedCall:
    """What the request path hands over: raw bytes and timestamps (epoch milliseconds)."""

    project_id: uuid.UUID
    organization_id: uuid.UUID
    key_id: uuid.UUID | None
    provider: str
    method: str
    path: str  # after /v1/proxy/{provider}/, without a leading v1/
    meta: CallMetadata
    start_ms: float
    request_body: bytes = b""
    request_content_type: str = ""
    end_ms: float | None = None
    status: int | None = None
    response_content_type: str = ""
    response_encoding: str = ""
    response_body: bytes = b""
    chunks: list[tuple[float, bytes]] | None = None  # a streamed answer: (arrival, bytes)
    error: tuple[str, str] | None = None  # (type, message) of a failure the proxy saw itself
    truncated: bool = False  # a body was too large to keep for the trace


@dataclass(slots=True)
class _Assembled:
    model: str | None = None
    content: str | None = None
    messages: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    first_token_ms: float | None = None
    error: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def operation(provider: str, method: str, path: str) -> str | None:
    """The LLM operation of a call, None for everything traced generically."""
    if method != "POST":
        return None
    table = _OPENAI_OPERATIONS if provider == "openai" else _ANTHROPIC_OPERATIONS
    return table.get(path.strip("/"))


def _decoder(encoding: str) -> Any:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise ValueError(f"unsupported content-encoding {encoding}")


def _decoded(body: bytes, encoding: str) -> bytes:
    decoder = _decoder(encoding)
    return body if decoder is None else decoder.decompress(body) + decoder.flush()


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def sse_events(chunks: list[tuple[float, bytes]], encoding: str = "") -> Iterator[tuple[float, str, str]]:
    """(arrival of the chunk that completed it, event name, data) of each server-sent event."""
    decoder = _decoder(encoding)
    text = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span two chunks
    buffer = ""
    for arrived, raw in chunks:
        data = decoder.decompress(raw) if decoder is not None else raw
        buffer = (buffer + text.decode(data)).replace("\r\n", "\n")
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            name, lines = "message", []
            for line in block.split("\n"):
                if line.startswith("data:"):
                    lines.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    name = line[6:].strip()
            if lines:
                yield arrived, name, "\n".join(lines)


def _error_of(body: Any, status: int | None) -> dict[str, str]:
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        kind = detail.get("type") or detail.get("code") or f"http_{status}"
        return {"type": str(kind), "message": str(detail.get("message") or f"HTTP {status}")}
    if isinstance(detail, str):
        return {"type": f"http_{status}", "message": detail}
    return {"type": f"http_{status}", "message": f"The provider answered HTTP {status}."}


# --- OpenAI ------------------------------------------------------------------


def _openai_message(message: dict[str, Any], result: _Assembled) -> None:
    content = message.get("content")
    if isinstance(content, str):
        result.content = content
    if message.get("tool_calls"):
        result.messages = [message]


def _openai_json(op: str, body: dict[str, Any], result: _Assembled) -> None:
    result.model = body.get("model")
    if isinstance(body.get("usage"), dict):
        result.usage = dict(body["usage"])
    if op == "responses":
        _responses_json(body, result)
        return
    choices = body.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    result.finish_reason = choice.get("finish_reason")
    if op == "chat" and isinstance(choice.get("message"), dict):
        _openai_message(choice["message"], result)
    elif op == "completion" and isinstance(choice.get("text"), str):
        result.content = choice["text"]
    elif op == "embedding":
        result.extra["embeddings"] = len(body.get("data") or [])


def _responses_json(body: dict[str, Any], result: _Assembled) -> None:
    texts, calls = [], []
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            texts.extend(
                part["text"]
                for part in item.get("content") or []
                if isinstance(part, dict) and part.get("type") == "output_text" and "text" in part
            )
        elif item.get("type") == "function_call":
            calls.append(item)
    result.content = "".join(texts)
    if calls:
        result.messages = [{"role": "assistant", "content": result.content, "tool_calls": calls}]
    result.finish_reason = body.get("status")
    usage = body.get("usage")
    if isinstance(usage, dict):
        cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
        result.usage = {
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "total_tokens": usage.get("total_tokens"),
            **({"prompt_tokens_details": {"cached_tokens": cached}} if cached is not None else {}),
        }


def _openai_stream(op: str, events: Iterator[tuple[float, str, str]], result: _Assembled) -> None:
    parts: list[str] = []
    tool_calls: dict[int, dict[str, Any]] = {}
    for arrived, _name, data in events:
        if data == "[DONE]":
            continue
        chunk = _json(data.encode())
        if not isinstance(chunk, dict):
            continue
        if op == "responses":
            kind = chunk.get("type")
            if kind == "response.output_text.delta":
                parts.append(chunk.get("delta") or "")
                result.first_token_ms = result.first_token_ms or arrived
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                if isinstance(chunk.get("response"), dict):
                    _openai_json(op, chunk["response"], result)
            elif kind == "error":
                kind = str(chunk.get("code") or "error")
                result.error = {"type": kind, "message": str(chunk.get("message"))}
            continue
        if "error" in chunk:
            result.error = _error_of(chunk, None)
            continue
        result.model = chunk.get("model") or result.model
        if isinstance(chunk.get("usage"), dict):
            result.usage = dict(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if op == "chat" else {"content": choice.get("text")}
            delta = delta if isinstance(delta, dict) else {}
            if delta.get("content"):
                parts.append(delta["content"])
                result.first_token_ms = result.first_token_ms or arrived
            for call in delta.get("tool_calls") or []:
                result.first_token_ms = result.first_token_ms or arrived
                empty = {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                slot = tool_calls.setdefault(call.get("index", 0), empty)
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]
    if op != "responses" or result.content is None:
        result.content = "".join(parts)
    if tool_calls:
        message = {"role": "assistant", "content": result.content or None}
        message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
        result.messages = [message]


def _openai_request(op: str, body: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {}
    if op == "chat" and isinstance(body.get("messages"), list):
        request["messages"] = body["messages"]
    elif op == "responses":
        if isinstance(body.get("input"), str):
            request["messages"] = [{"role": "user", "content": body["input"]}]
        elif isinstance(body.get("input"), list):
            request["messages"] = [m for m in body["input"] if isinstance(m, dict)]
        if isinstance(body.get("instructions"), str):
            request.setdefault("messages", []).insert(0, {"role": "system", "content": body["instructions"]})
    elif op == "completion" and isinstance(body.get("prompt"), str):
        request["prompt"] = body["prompt"]
    elif op == "embedding":
        if isinstance(body.get("input"), str):
            request["prompt"] = body["input"]
        elif isinstance(body.get("input"), list) and all(isinstance(i, str) for i in body["input"]):
            request["prompt"] = "\n".join(body["input"])
    return request


# --- Anthropic -------------------------------------------------------------------


def _anthropic_usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0) + cached
    completion = usage.get("output_tokens")
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if isinstance(completion, int):
        out["total_tokens"] = prompt + completion
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _anthropic_blocks(blocks: list[Any], result: _Assembled) -> None:
    texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    tools = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
    result.content = "".join(texts)
    if tools:
        result.messages = [{"role": "assistant", "content": blocks}]


def _anthropic_json(body: dict[str, Any], result: _Assembled) -> None:
    result.model = body.get("model")
    result.finish_reason = body.get("stop_reason")
    _anthropic_blocks(body.get("content") or [], result)
    if isinstance(body.get("usage"), dict):
        result.usage = _anthropic_usage(body["usage"])


def _anthropic_stream(events: Iterator[tuple[float, str, str]], result: _Assembled) -> None:
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    for arrived, _name, data in events:
        event = _json(data.encode())
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            result.model = message.get("model")
            usage.update(message.get("usage") or {})
        elif kind == "content_block_start":
            blocks[event.get("index", 0)] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            block = blocks.setdefault(event.get("index", 0), {"type": "text", "text": ""})
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
                result.first_token_ms = result.first_token_ms or arrived
            elif delta.get("type") == "input_json_delta":
                block["partial_json"] = block.get("partial_json", "") + delta.get("partial_json", "")
                result.first_token_ms = result.first_token_ms or arrived
        elif kind == "message_delta":
            result.finish_reason = (event.get("delta") or {}).get("stop_reason") or result.finish_reason
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        elif kind == "error":
            result.error = _error_of(event, None)
    for block in blocks.values():
        if block.get("type") == "tool_use" and "partial_json" in block:
            block["input"] = _json(block.pop("partial_json").encode()) or {}
    _anthropic_blocks([blocks[i] for i in sorted(blocks)], result)
    if usage:
        result.usage = _anthropic_usage(usage)


def _anthropic_request(body: dict[str, Any]) -> dict[str, Any]:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = body.get("system")
    if isinstance(system, str | list) and system:
        messages.insert(0, {"role": "system", "content": system})
    return {"messages": messages} if messages else {}


# --- The span --------------------------------------------------------------------


def _assemble(call: ProxiedCall, op: str | None) -> _Assembled:
    result = _Assembled()
    if call.chunks is not None:
        if op is not None and "text/event-stream" in call.response_content_type:
            events = sse_events(call.chunks, call.response_encoding)
            if call.provider == "openai":
                _openai_stream(op, events, result)
            else:
                _anthropic_stream(events, result)
            return result
        body = b"".join(chunk for _, chunk in call.chunks)
    else:
        body = call.response_body
    parsed = _json(_decoded(body, call.response_encoding)) if "json" in call.response_content_type else None
    if call.status is not None and call.status >= 400:
        result.error = _error_of(parsed, call.status)
    elif isinstance(parsed, dict) and op is not None:
        if call.provider == "openai":
            _openai_json(op, parsed, result)
        else:
            _anthropic_json(parsed, result)
    elif isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
        result.model = parsed["model"]
    return result


def build_span(call: ProxiedCall) -> dict[str, Any]:
    """The canonical span (as a dict) of a proxied call."""
    op = operation(call.provider, call.method, call.path)
    body = _json(call.request_body) if "json" in call.request_content_type else None
    body = body if isinstance(body, dict) else {}
    try:
        result = _assemble(call, op)
    except (ValueError, zlib.error) as exc:
        result = _Assembled(extra={"capture_error": str(exc)})

    meta = call.meta
    metadata = dict(meta.metadata)
    if meta.tags:
        tags = metadata.get("tags") if isinstance(metadata.get("tags"), dict) else {}
        metadata["tags"] = {**tags, **meta.tags}
    attributes: dict[str, Any] = {
        "untrace.source": "proxy",
        "http.method": call.method,
        "http.path": "/" + call.path,
        "http.status_code": call.status,
        "proxy.streamed": call.chunks is not None,
        **{f"proxy.{k}": v for k, v in result.extra.items()},
    }
    if call.truncated:
        attributes["proxy.truncated"] = True

    span: dict[str, Any] = {
        "id": meta.span_id,
        "trace_id": meta.trace_id,
        "parent_id": meta.parent_id,
        "session_id": meta.session_id,
        "user_id": meta.user_id,
        "name": f"{call.provider}.{call.path.strip('/').replace('/', '.')}",
        "kind": "embedding" if op == "embedding" else "llm" if op else "span",
        "start_time": call.start_ms,
        "end_time": call.end_ms,
        "provider": call.provider,
        "model": result.model or (body.get("model") if isinstance(body.get("model"), str) else None),
        "metadata": metadata or None,
        "attributes": attributes,
    }
    if op is not None:
        request = _openai_request(op, body) if call.provider == "openai" else _anthropic_request(body)
        parameters = {k: v for k, v in body.items() if k not in _NOT_PARAMETERS}
        if parameters:
            request["parameters"] = parameters
        span["request"] = request or None
        response: dict[str, Any] = {}
        if result.error is None or result.content:
            if result.content is not None:
                response["content"] = result.content
            if result.messages:
                response["messages"] = result.messages
            if result.finish_reason:
                response["finish_reason"] = result.finish_reason
        if result.usage:
            response["usage"] = {k: v for k, v in result.usage.items() if v is not None}
        span["response"] = response or None
    if result.first_token_ms is not None:
        span["metrics"] = {"time_to_first_token_ms": max(0.0, result.first_token_ms - call.start_ms)}
    error = call.error and {"type": call.error[0], "message": call.error[1]}
    span["error"] = error or result.error
    return {key: value for key, value in span.items() if value is not None}


def minimal_span(span: dict[str, Any], reason: str) -> dict[str, Any]:
    """The span without its bodies and free-form metadata, when those did not validate."""
    keep = ("id", "trace_id", "parent_id", "session_id", "user_id", "name", "kind", "start_time", "end_time")
    out = {key: span[key] for key in keep if key in span}
    out.update(provider=span.get("provider"), error=span.get("error"))
    out["attributes"] = {**span.get("attributes", {}), "proxy.capture_error": reason}
    return {key: value for key, value in out.items() if value is not None}
