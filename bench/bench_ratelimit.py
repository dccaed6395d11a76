"""What the per-key rate limit costs ingest: single-span POSTs to one web process with
the limiter on and off, in the same run, on loopback, alternating so drift hits both.

With the limiter on, the key has a limit so high it never refuses (100,000 a second),
so every request makes the Redis round trip (EVALSHA of the token bucket) and answers
202. Also measured: one `take` from this process (the round trip on its own).

Run: .venv/bin/python bench/bench_ratelimit.py   (needs local PostgreSQL and Redis)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_ingest import Load, make_span
from bench.common import bench_env, scratch_database
from tests import live

SECONDS = 6.0
ROUNDS = 3
CLIENTS = 3


def _server_env(database_url: str, *, limiter: bool) -> dict[str, str]:
    env = bench_env(database_url)
    env.update(UNTRACE_DEFAULT_PLAN="enterprise", UNTRACE_RATE_LIMITS_ENABLED="true" if limiter else "false")
    return env


def _measure(base: str, key: str) -> tuple[float, float, dict[int, int]]:
    load = Load(
        base,
        "/v1/traces",
        orjson.dumps(make_span(0)),
        {"Content-Type": "application/json", "X-Untrace-Key": key},
    )
    elapsed = load.run(clients=CLIENTS, seconds=SECONDS)
    return load.requests / elapsed, statistics.median(load.latencies) * 1000, load.statuses


def _take_cost(database_url: str) -> float:
    """Microseconds of one ratelimit.take (EVALSHA over loopback) from this process."""
    os.environ.update(bench_env(database_url))
    os.environ["DJANGO_SETTINGS_MODULE"] = "untrace.settings"
    import django

    django.setup()
    from apps.core import ratelimit

    limit = ratelimit.Limit(rate=100_000.0, burst=100_000)
    for _ in range(500):
        ratelimit.take("bench", "warm", limit)
    n = 5000
    started = time.perf_counter()
    for _ in range(n):
        ratelimit.take("bench", "one", limit)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    with scratch_database() as (database_url, key):
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE keys_apikey SET rate_limit_per_second = 100000, rate_limit_burst = 100000")
        results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        with (
            live.web_server(_server_env(database_url, limiter=False)) as off,
            live.web_server(_server_env(database_url, limiter=True)) as on,
        ):
            for base in (off, on):
                _measure(base, key)  # warm-up: key cache, connections, script load
            for _ in range(ROUNDS):
                for limiter, base in ((False, off), (True, on)):
                    rate, p50, statuses = _measure(base, key)
                    assert set(statuses) == {202}, statuses
                    results[limiter].append((rate, p50))
        print(f"single-span ingest, {CLIENTS} clients, {ROUNDS} rounds of {SECONDS:.0f} s, one web process")
        print(f"{'limiter':>8} {'req/s':>8} {'p50 ms':>7}")
        for limiter in (False, True):
            rate = statistics.median(r for r, _ in results[limiter])
            p50 = statistics.median(p for _, p in results[limiter])
            print(f"{'on' if limiter else 'off':>8} {rate:>8,.0f} {p50:>7.2f}")
        off_rate = statistics.median(r for r, _ in results[False])
        on_rate = statistics.median(r for r, _ in results[True])
        print(f"on/off throughput ratio: {on_rate / off_rate:.3f}")
        print(f"one take (EVALSHA round trip) from a client process: {_take_cost(database_url):.0f} us")


if __name__ == "__main__":
    main()
