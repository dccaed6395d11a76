from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from django.conf import settings

from apps.billing import usage
from apps.budgets import spend
from tests.integration.ingest.helpers import post


def clear_budget_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)  # this run's own test database
    keys = [*client.scan_iter("untrace:spend:*"), spend.EXHAUSTED_KEY]
    client.delete(*keys)
    client.close()
    spend.forget_cache()
    usage.forget_cache()


@pytest.fixture(autouse=True)
def _budget_state():
    clear_budget_redis()
    yield
    clear_budget_redis()


@pytest.fixture(autouse=True)
def routed(monkeypatch) -> list:
    """Batch ids handed to the route task (the broker is never called)."""
    calls: list = []
    monkeypatch.setattr("apps.traces.store.enqueue_routing", lambda *, batch_id: calls.append(batch_id))
    return calls


def ingest_costs(client, key: str, costs: list[float]) -> list[str]:
    """Store one span per cost through the batch API; their ids."""
    from tests.integration.ingest.helpers import new_id

    spans = [
        {"id": new_id("cost"), "model": "gpt-4o-mini", "metrics": {"estimated_cost": cost}} for cost in costs
    ]
    response = post(client, "/v1/traces/batch", {"traces": spans}, key)
    assert response.status_code == 202, response.content
    return [s["id"] for s in spans]


@dataclass
class Receiver:
    """A webhook receiver on loopback: records each request; answers `status`."""

    url: str = ""
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            receiver.requests.append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            )
            self.send_response(receiver.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/budget"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as found:
        yield found
