"""End to end on loopback: ingest -> store -> route -> deliver to two webhook
destinations, with uvicorn, a Celery worker and beat, PostgreSQL and Redis.

Phase 1 (throughput): clients post batches as fast as the stack accepts them for
`--seconds`; the rate is spans delivered to both destinations per second, from
the first 202 to the last delivery. Phase 2 (latency): the same at half that
rate, paced; prints the p95 time from a span's 202 to its arrival at both
destinations and the backlog at the end. Baseline: phase 1 again with one span
per request (one ingest batch, one route task and one delivery per span).

    python bench/bench_pipeline.py [--seconds 15] [--batch 100] [--clients 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_env, scratch_database
from tests import live
from tests.fakes.sink import running_sink

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _span(run: str, i: int) -> dict:
    return {
        "id": f"{run}-{i}",
        "trace_id": f"{run}-t{i // 4}",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "request": {"messages": [{"role": "user", "content": "Summarise the invoice for order 1234."}]},
        "response": {
            "content": "The invoice lists two items.",
            "usage": {"prompt_tokens": 12, "completion_tokens": 7},
        },
    }


class Load:
    def __init__(self, base: str, key: str, sinks, run: str, batch: int) -> None:
        self.base, self.key, self.sinks, self.run, self.batch = base, key, sinks, run, batch
        self.accepted_at: dict[str, float] = {}
        self.counter = 0
        self.lock = threading.Lock()

    def _next(self) -> list[dict]:
        with self.lock:
            start = self.counter
            self.counter += self.batch
        return [_span(self.run, i) for i in range(start, start + self.batch)]

    def client(self, deadline: float, interval: float) -> None:
        with httpx.Client(timeout=30) as client:
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                spans = self._next()
                if self.batch == 1:
                    url, body = f"{self.base}/v1/traces", orjson.dumps(spans[0])
                else:
                    url, body = f"{self.base}/v1/traces/batch", orjson.dumps({"traces": spans})
                response = client.post(
                    url, content=body, headers={"content-type": "application/json", "x-untrace-key": self.key}
                )
                now = time.monotonic()
                if response.status_code == 202:
                    with self.lock:
                        for span in spans:
                            self.accepted_at[span["id"]] = now
                if interval:
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))

    def drive(self, seconds: float, clients: int, rate: float | None = None) -> float:
        started = time.monotonic()
        interval = clients * self.batch / rate if rate else 0.0
        threads = [
            threading.Thread(target=self.client, args=(started + seconds, interval)) for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return started

    def delivered_at(self, span_id: str) -> float | None:
        times = [sink.arrivals.get(span_id) for sink in self.sinks]
        return None if None in times else max(times)

    def wait_delivered(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.delivered_at(s) is not None for s in list(self.accepted_at)):
                break
            time.sleep(0.2)
        return max((self.delivered_at(s) or 0.0) for s in self.accepted_at)


def _configure(base: str, key: str, sinks) -> None:
    headers = {"x-untrace-key": key}
    ids = []
    for n, sink in enumerate(sinks):
        created = httpx.post(
            f"{base}/v1/destinations",
            json={"name": f"sink {n}", "type": "webhook", "config": {"url": sink.url, "secret": SECRET}},
            headers=headers,
        )
        created.raise_for_status()
        ids.append(created.json()["id"])
    rule = {"name": "both", "conditions": {}, "actions": {"destinations": ids}}
    httpx.put(f"{base}/v1/routing/config", json={"rules": [rule]}, headers=headers).raise_for_status()


def _phase(base, key, sinks, run, batch, seconds, clients, rate=None):
    load = Load(base, key, sinks, run, batch)
    started = load.drive(seconds, clients, rate)
    last = load.wait_delivered(timeout=300)
    accepted = len(load.accepted_at)
    latencies = sorted((load.delivered_at(s) or last) - t for s, t in load.accepted_at.items())
    p95 = latencies[int(len(latencies) * 0.95) - 1] if latencies else float("nan")
    return {
        "accepted": accepted,
        "accept_rate": accepted / seconds,
        "delivered_rate": accepted / (last - started) if last > started else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p95": p95,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        database_url, key = stack.enter_context(scratch_database())
        env = bench_env(database_url)
        env.update(
            UNTRACE_ALLOW_PRIVATE_DESTINATIONS="true",
            UNTRACE_DELIVERY_SWEEP_SECONDS="1",
            UNTRACE_PROJECT_BACKLOG_LIMIT="100000000",
            PROMETHEUS_MULTIPROC_DIR="",
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR")
        sinks = [stack.enter_context(running_sink(SECRET)) for _ in range(2)]
        base = stack.enter_context(live.web_server(env))
        stack.enter_context(live.celery_worker(env, concurrency=2))
        stack.enter_context(live.celery_beat(env, Path(tmp) / "beat"))
        _configure(base, key, sinks)

        full = _phase(base, key, sinks, "max", args.batch, args.seconds, args.clients)
        half = _phase(
            base, key, sinks, "half", args.batch, args.seconds, args.clients, rate=full["delivered_rate"] / 2
        )
        single = _phase(base, key, sinks, "one", 1, args.seconds, args.clients)

    print(f"batches of {args.batch} spans, {args.clients} clients, {args.seconds:.0f} s a phase, two sinks")
    print(
        f"max load:    accepted {full['accept_rate']:,.0f} spans/s, delivered to both "
        f"{full['delivered_rate']:,.0f} spans/s, p95 202->delivered {full['p95']:.2f} s"
    )
    print(
        f"half rate:   {half['accept_rate']:,.0f} spans/s offered, delivered "
        f"{half['delivered_rate']:,.0f} spans/s, p50 {half['p50']:.2f} s, p95 {half['p95']:.2f} s"
    )
    print(
        f"one span per request (baseline): delivered {single['delivered_rate']:,.0f} spans/s; "
        f"ratio {full['delivered_rate'] / max(single['delivered_rate'], 1e-9):.1f}x"
    )


if __name__ == "__main__":
    main()
