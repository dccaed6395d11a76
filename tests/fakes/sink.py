"""A webhook receiver on loopback with fault modes, for delivery tests.

It verifies each request's Standard Webhooks signature with the
`standardwebhooks` library (when it has the secret) and records the span ids it
accepted, so a test can compare what was delivered with what was accepted.

Modes (set `sink.mode`, or `sink.schedule` for one mode per request in turn):
ok (200), error (500), throttle (429 with Retry-After: `retry_after`),
timeout (sleeps `delay` seconds, then 200), slow (sleeps `delay`, then 200),
flaky (500 for a `fail_ratio` of requests, seeded), bad (400), gone (410).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks import Webhook


class Sink:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.mode = "ok"
        self.schedule: list[str] = []
        self.retry_after = 1
        self.delay = 0.0
        self.fail_ratio = 0.3
        self.random = random.Random(1234)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every request: mode, headers, status
        self.received: Counter[str] = Counter()  # span id -> times accepted
        self.payloads: list[dict[str, Any]] = []
        self.arrivals: dict[str, float] = {}  # span id -> first arrival (monotonic)
        self.keep_payloads = True
        self.url = ""

    def next_mode(self) -> str:
        with self.lock:
            return self.schedule.pop(0) if self.schedule else self.mode

    @property
    def delivered(self) -> set[str]:
        with self.lock:
            return set(self.received)

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.received.values())


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
            if self.wfile.closed:
                return
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            mode = sink.next_mode()
            record = {"mode": mode, "headers": dict(self.headers.items()), "at": time.monotonic()}
            with sink.lock:
                sink.requests.append(record)
            if mode in ("timeout", "slow"):
                time.sleep(sink.delay)
            if mode == "error" or (mode == "flaky" and sink.random.random() < sink.fail_ratio):
                return self._answer(500, b'{"error": "internal"}')
            if mode == "throttle":
                return self._answer(429, b'{"error": "slow down"}', {"retry-after": str(sink.retry_after)})
            if mode == "bad":
                return self._answer(400, b'{"error": "invalid payload: spans[0].name"}')
            if mode == "gone":
                return self._answer(410, b'{"error": "this endpoint was removed"}')
            if sink.secret:
                try:
                    Webhook(sink.secret).verify(body, dict(self.headers.items()))
                except Exception:  # noqa: BLE001 (any verification failure is a 401 here)
                    return self._answer(401, b'{"error": "bad signature"}')
            payload = orjson.loads(body)
            now = time.monotonic()
            with sink.lock:
                if sink.keep_payloads:
                    sink.payloads.append(payload)
                for span in payload["spans"]:
                    sink.received[span["id"]] += 1
                    sink.arrivals.setdefault(span["id"], now)
            record["status"] = 200
            return self._answer(200, b'{"ok": true}')

    return Handler


@contextmanager
def running_sink(secret: str | None = None) -> Iterator[Sink]:
    sink = Sink(secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sink))
    server.daemon_threads = True
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
