"""A loopback HTTP server that records every request (method, path, headers, body) and
answers with what a test's `answer(record)` returns: `(status, body bytes, headers)`.
Used to stand in for an observability platform's ingestion API in end-to-end tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, bytes, dict[str, str]]


class Recorder:
    def __init__(self, answer: Callable[[dict[str, Any]], Answer]) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.url = ""


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self._record("POST")

        def do_DELETE(self) -> None:
            self._record("DELETE")

        def _record(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            record = {
                "method": method,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
            with recorder.lock:
                recorder.requests.append(record)
                status, answer, headers = recorder.answer(record)
            self.send_response(status)
            self.send_header("content-length", str(len(answer)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextmanager
def running_recorder(answer: Callable[[dict[str, Any]], Answer]) -> Iterator[Recorder]:
    recorder = Recorder(answer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    server.daemon_threads = True
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
