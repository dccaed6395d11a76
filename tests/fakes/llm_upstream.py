"""A fake OpenAI + Anthropic API on loopback, speaking the documented wire formats.

Answers are deterministic (fixed ids and timestamps), so a call made directly
and the same call made through the proxy can be compared byte for byte.
Switches, by request:

- model "error-400" / "error-429" / "error-500": the provider's error body
  (429 with Retry-After: 30);
- header x-fake-fail-times: N with x-fake-key: K: the first N calls with key K
  answer 503 (Retry-After: 0), later ones succeed;
- header x-fake-chunk-delay-ms: D: a stream waits D ms before each chunk;
- header x-fake-hang-ms: H: a chat completion waits H ms before answering (and
  counts, in `hangs_abandoned`, the calls whose caller closed the connection meanwhile);
- model "slow-stream": 100 chunks 50 ms apart (for disconnects);
- any other path: 200 with a JSON echo of method, path and query.

Run standalone: python -m tests.fakes.llm_upstream --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web

CREATED = 1_700_000_000
CONTENT = ["Hello", " from", " the", " fake", "!"]
TOOL_ARGS = ['{"city": ', '"Paris"}']


class FakeState:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures: dict[str, int] = defaultdict(int)
        self.streams_cut: int = 0
        self.streams_completed: int = 0
        self.hangs_abandoned: int = 0  # x-fake-hang-ms calls whose caller had gone when it ended


STATE = web.AppKey("state", FakeState)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = orjson.dumps(data)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _openai_error(status: int) -> web.Response:
    kinds = {400: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error"}
    body = {
        "error": {
            "message": f"Fake error {status}.",
            "type": kinds.get(status, "server_error"),
            "param": None,
            "code": kinds.get(status),
        }
    }
    headers = {"retry-after": "30"} if status == 429 else None
    return _json(body, status, headers)


def _usage(prompt: int = 12, completion: int = 5) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _sse(
    request: web.Request, events: list[tuple[str | None, Any]], delay: float
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    state: FakeState = request.app[STATE]
    try:
        for name, data in events:
            if delay:
                await asyncio.sleep(delay)
            text = data if isinstance(data, str) else orjson.dumps(data).decode()
            prefix = f"event: {name}\n" if name else ""
            await response.write(f"{prefix}data: {text}\n\n".encode())
        await response.write_eof()
    except ConnectionResetError:
        state.streams_cut += 1
        return response
    state.streams_completed += 1
    return response


def _failing(request: web.Request) -> web.Response | None:
    times = int(request.headers.get("x-fake-fail-times", "0"))
    if not times:
        return None
    state: FakeState = request.app[STATE]
    key = request.headers.get("x-fake-key", "")
    if state.failures[key] < times:
        state.failures[key] += 1
        return _json({"error": {"message": "overloaded", "type": "server_error"}}, 503, {"retry-after": "0"})
    return None


async def _record(request: web.Request) -> bytes:
    body = await request.read()
    request.app[STATE].requests.append(
        {"method": request.method, "path": request.path_qs, "headers": dict(request.headers), "body": body}
    )
    return body


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await _record(request))
    model = body.get("model", "")
    if model.startswith("error-"):
        return _openai_error(int(model[6:]))
    failing = _failing(request)
    if failing is not None:
        return failing
    hang = float(request.headers.get("x-fake-hang-ms", "0"))
    if hang:
        await asyncio.sleep(hang / 1000)
        if request.transport is None or request.transport.is_closing():
            request.app[STATE].hangs_abandoned += 1
    tools = bool(body.get("tools"))
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(CONTENT), "refusal": None}
        if tools:
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_fake1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "".join(TOOL_ARGS)},
                    }
                ],
            }
        return _json(
            {
                "id": "chatcmpl-fake1",
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if tools else "stop",
                    }
                ],
                "usage": _usage(),
                "system_fingerprint": "fp_fake",
            }
        )
    base = {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": CREATED, "model": model}
    pieces = CONTENT * 20 if model == "slow-stream" else CONTENT
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    if tools:
        deltas += [
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_fake1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": TOOL_ARGS[0]},
                    }
                ]
            },
            {"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGS[1]}}]},
        ]
    else:
        deltas += [{"content": piece} for piece in pieces]
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events: list[tuple[str | None, Any]] = [
        (None, {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]})
        for d in deltas
    ]
    finish = "tool_calls" if tools else "stop"
    events.append(
        (None, {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]})
    )
    if include_usage:
        events.append((None, {**base, "choices": [], "usage": _usage()}))
    events.append((None, "[DONE]"))
    delay = float(request.headers.get("x-fake-chunk-delay-ms", "50" if model == "slow-stream" else "0"))
    return await _sse(request, events, delay / 1000)


async def completions(request: web.Request) -> web.Response:
    body = orjson.loads(await _record(request))
    return _json(
        {
            "id": "cmpl-fake1",
            "object": "text_completion",
            "created": CREATED,
            "model": body.get("model"),
            "choices": [{"text": "".join(CONTENT), "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": _usage(4, 5),
        }
    )


async def embeddings(request: web.Request) -> web.Response:
    body = orjson.loads(await _record(request))
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return _json(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, -0.3]}
                for i in range(len(inputs))
            ],
            "model": body.get("model"),
            "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)},
        }
    )


async def models(request: web.Request) -> web.Response:
    await _record(request)
    return _json(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": CREATED, "owned_by": "fake"}
                for name in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
            ],
        }
    )


async def files(request: web.Request) -> web.Response:
    await _record(request)
    state: FakeState = request.app[STATE]
    raw = state.requests[-1]["body"]
    return _json(
        {
            "id": "file-fake1",
            "object": "file",
            "bytes": len(raw),
            "created_at": CREATED,
            "filename": "upload.jsonl",
            "purpose": "batch",
            "multipart": request.content_type == "multipart/form-data",
        }
    )


async def messages(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await _record(request))
    model = body.get("model", "")
    if model.startswith("error-"):
        status = int(model[6:])
        error = {"type": "invalid_request_error", "message": "Fake."}
        return _json({"type": "error", "error": error}, status)
    usage_in = {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if not body.get("stream"):
        return _json(
            {
                "id": "msg_fake1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "".join(CONTENT)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {**usage_in, "output_tokens": 5},
            }
        )
    message = {
        "id": "msg_fake1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage_in, "output_tokens": 1},
    }
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
        )
        for piece in CONTENT
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    delay = float(request.headers.get("x-fake-chunk-delay-ms", "0"))
    return await _sse(request, events, delay / 1000)


async def echo(request: web.Request) -> web.Response:
    await _record(request)
    return _json({"method": request.method, "path": request.path, "query": request.query_string})


def make_app(state: FakeState | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = state or FakeState()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/files", files)
    app.router.add_post("/v1/messages", messages)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@contextmanager
def fake_upstream() -> Iterator[tuple[str, FakeState]]:
    """The fake on a free loopback port, served from its own thread and event loop: (base URL, state).
    Everything asyncio happens on that thread, so the caller's thread may even have a loop running."""
    state = FakeState()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(state), access_log=None)
    ports: queue.Queue[int | BaseException] = queue.Queue()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            ports.put(site._server.sockets[0].getsockname()[1])
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            ports.put(exc)
            return
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fake-upstream", daemon=True)
    thread.start()
    port = ports.get(timeout=10)
    if isinstance(port, BaseException):
        raise port
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
