"""A loopback recorder that answers like the OTLP-family platforms, for the connector end-to-end tests.

It records every request (path, headers, body) and answers per `platform`:
- "otlp" / "phoenix" / "mlflow": 200 with a protobuf `ExportTraceServiceResponse` (with `partial_success`
  when `rejected` is set); phoenix answers 415 and mlflow 400 to anything but `application/x-protobuf`, and
  mlflow 400 without `x-mlflow-experiment-id`, as those servers do;
- "langfuse": the OTLP path as above; `/api/public/ingestion` answers 207 with `{successes, errors}` per
  event envelope, failing the events whose ids are in `fail_events`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse


class Recorder:
    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.requests: list[dict[str, Any]] = []
        self.rejected = 0
        self.fail_events: set[str] = set()
        self.lock = threading.Lock()
        self.url = ""


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with recorder.lock:
                recorder.requests.append({"path": self.path, "headers": headers, "body": body})
            content_type = headers.get("content-type", "").split(";")[0]
            if self.path.endswith("/api/public/ingestion"):
                batch = json.loads(body)["batch"]
                answer = {
                    "successes": [
                        {"id": e["id"], "status": 201} for e in batch if e["id"] not in recorder.fail_events
                    ],
                    "errors": [
                        {"id": e["id"], "status": 400, "message": "Invalid request data"}
                        for e in batch
                        if e["id"] in recorder.fail_events
                    ],
                }
                return self._answer(207, json.dumps(answer).encode(), "application/json")
            if not self.path.endswith("/v1/traces"):
                return self._answer(404, b'{"detail": "Not Found"}', "application/json")
            if recorder.platform == "phoenix" and content_type != "application/x-protobuf":
                return self._answer(415, b"Unsupported content type", "text/plain")
            if recorder.platform == "mlflow" and "x-mlflow-experiment-id" not in headers:
                return self._answer(400, b'{"detail": "missing experiment"}', "application/json")
            response = ExportTraceServiceResponse()
            if recorder.rejected:
                response.partial_success.rejected_spans = recorder.rejected
                response.partial_success.error_message = "rejected by the recorder"
            if content_type == "application/json":
                payload = {}
                if recorder.rejected:
                    payload = {
                        "partialSuccess": {"rejectedSpans": str(recorder.rejected), "errorMessage": "no"}
                    }
                return self._answer(200, json.dumps(payload).encode(), "application/json")
            return self._answer(200, response.SerializeToString(), "application/x-protobuf")

    return Handler


@contextmanager
def running_recorder(platform: str) -> Iterator[Recorder]:
    recorder = Recorder(platform)
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
