"""Batch and single-span ingest through one web process, against the floor.

The floor is a bare script doing the least any ingest must: parse the same
request bytes (orjson) and bulk-write them to PostgreSQL in one statement.
Untrace adds authentication, validation, accounting (tokens, cost, timings),
the durable write with idempotency, and the routing enqueue to Redis.

Run: .venv/bin/python bench/bench_ingest.py   (needs local PostgreSQL and Redis)
"""

from __future__ import annotations

import http.client
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import scratch_database, web_server

SECONDS = 8.0  # per measurement
CLIENTS = 3


def make_span(i: int) -> dict:
    """An LLM span of about 2 KB, as an SDK or the proxy would send it."""
    question = "How do I configure retries with exponential backoff for a flaky upstream? " * 4
    answer = (
        "Use a capped exponential backoff with full jitter, honour Retry-After, and stop after "
        "a bounded number of attempts; record each attempt so failures are visible. "
    ) * 6
    return {
        "id": f"@@-{i}",
        "trace_id": f"@@-t{i // 4}",
        "name": "chat.completions",
        "kind": "llm",
        "provider": "openai",
        "model": "gpt-4o-mini-2024-07-18",
        "start_time": 1763900000000 + i,
        "end_time": 1763900001250 + i,
        "session_id": f"session-{i % 50}",
        "user_id": f"user-{i % 200}",
        "request": {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant for backend engineers."},
                {"role": "user", "content": question},
            ],
            "parameters": {"temperature": 0.2, "max_tokens": 512},
        },
        "response": {
            "content": answer,
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 96, "completion_tokens": 180, "total_tokens": 276},
        },
        "metadata": {
            "environment": "production",
            "version": "1.4.2",
            "tags": {"team": "search", "feature": "qa"},
        },
        "metrics": {"time_to_first_token_ms": 180.0},
    }


def batch_template(size: int) -> bytes:
    return orjson.dumps({"traces": [make_span(i) for i in range(size)]})


class Load:
    """CLIENTS threads posting bodies with unique span ids for SECONDS."""

    def __init__(self, base: str, path: str, template: bytes, headers: dict[str, str]) -> None:
        self.url = urlparse(base)
        self.path, self.template, self.headers = path, template, headers
        self.requests = 0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()
        self.counter = 0

    def _next_body(self) -> bytes:
        with self.lock:
            self.counter += 1
            n = self.counter
        return self.template.replace(b"@@", f"r{n}".encode())

    def _client(self, deadline: float) -> None:
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)
        while time.perf_counter() < deadline:
            body = self._next_body()
            started = time.perf_counter()
            conn.request("POST", self.path, body=body, headers=self.headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with self.lock:
                self.requests += 1
                self.latencies.append(elapsed)
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        conn.close()

    def run(self, clients: int = CLIENTS, seconds: float = SECONDS) -> float:
        deadline = time.perf_counter() + seconds
        threads = [threading.Thread(target=self._client, args=(deadline,)) for _ in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started


def floor(database_url: str, template: bytes, size: int, seconds: float = SECONDS) -> float:
    """Spans/s of parse + one bulk INSERT of the same bytes, nothing else."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS floor_span (project_id uuid, span_id text, trace_id text, "
            "body jsonb, UNIQUE (project_id, span_id))"
        )
        n, spans, deadline = 0, 0, time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            n += 1
            items = orjson.loads(template.replace(b"@@", f"f{n}".encode()))["traces"]
            rows = [{"span_id": s["id"], "trace_id": s["trace_id"], "body": s} for s in items]
            conn.execute(
                "INSERT INTO floor_span SELECT gen_random_uuid(), span_id, trace_id, body "
                "FROM jsonb_to_recordset(%s::jsonb) AS r(span_id text, trace_id text, body jsonb) "
                "ON CONFLICT DO NOTHING",
                [orjson.dumps(rows).decode()],
            )
            spans += len(items)
        return spans / (time.perf_counter() - started)


def main() -> None:
    with scratch_database() as (database_url, key), web_server(database_url) as base:
        headers = {"Content-Type": "application/json", "X-Untrace-Key": key}
        columns = ("batch", "untrace spans/s", "floor spans/s", "ratio", "p50 ms")
        print(f"{columns[0]:>6} {columns[1]:>16} {columns[2]:>14} {columns[3]:>6} {columns[4]:>7} statuses")
        for size in (100, 1000):
            template = batch_template(size)
            Load(base, "/v1/traces/batch", template, headers).run(seconds=2)  # warm-up
            load = Load(base, "/v1/traces/batch", template, headers)
            elapsed = load.run()
            rate = load.requests * size / elapsed
            floor_rate = floor(database_url, template, size)
            p50 = statistics.median(load.latencies) * 1000
            ratio = rate / floor_rate
            print(f"{size:>6} {rate:>16,.0f} {floor_rate:>14,.0f} {ratio:>6.2f} {p50:>7.1f} {load.statuses}")
            print(f"       request body {len(template) / size:,.0f} bytes per span")

        single = orjson.dumps(make_span(0))
        load = Load(base, "/v1/traces", single, headers)
        load.run(clients=1, seconds=2)
        load = Load(base, "/v1/traces", single, headers)
        load.run(clients=1, seconds=5)
        lat = sorted(load.latencies)
        print(
            f"single span, one client: p50 {lat[len(lat) // 2] * 1000:.2f} ms, "
            f"p95 {lat[int(len(lat) * 0.95)] * 1000:.2f} ms, {load.requests / 5:.0f} req/s {load.statuses}"
        )


if __name__ == "__main__":
    main()
