"""What the outbound guard costs the proxy's upstream calls, in one process.

A fake OpenAI API (tests/fakes/llm_upstream.py) on loopback; the proxy's own
`upstream.open_response` calls it sequentially through the plain pool (the
deployment's upstream) and through the guarded pool (a project's upstream), in
interleaved rounds so drift hits both alike, with UNTRACE_ALLOW_PRIVATE_DESTINATIONS
true (the guard only reads the setting per new connection). Then, with the
setting false, the per-connection check itself (`GuardedTCPConnector._resolve_host`
on a warm DNS cache entry, what a new pooled connection pays, next to the plain
connector's) and the per-request work the route adds for a project with its own
settings (`deployment_bases`).

Run: .venv/bin/python bench/bench_outbound.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import timeit
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "untrace.settings_test")

import django

django.setup()

from django.conf import settings  # noqa: E402

from apps.core.outbound import GuardedTCPConnector  # noqa: E402
from apps.proxy import upstream  # noqa: E402
from tests.fakes.llm_upstream import fake_upstream  # noqa: E402

ROUNDS = 20
PER_ROUND = 300
CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
HEADERS = [("content-type", "application/json"), ("authorization", "Bearer sk-x")]


async def _calls(url: str, guarded: bool, n: int) -> float:
    policy = upstream.attempts()
    started = time.perf_counter()
    for _ in range(n):
        response = await upstream.open_response(
            provider="openai",
            method="POST",
            url=url,
            headers=HEADERS,
            body=CHAT,
            policy=policy,
            guarded=guarded,
        )
        await response.read()
        response.release()
    return (time.perf_counter() - started) / n * 1e6


async def _pools(fake: str) -> dict[str, list[float]]:
    url = f"{fake}/v1/chat/completions"
    results: dict[str, list[float]] = {"plain pool": [], "guarded pool": []}
    await _calls(url, False, 50)  # warm both pools
    await _calls(url, True, 50)
    for index in range(ROUNDS):  # the order alternates, so neither always goes first
        order = (False, True) if index % 2 == 0 else (True, False)
        for guarded in order:
            name = "guarded pool" if guarded else "plain pool"
            results[name].append(await _calls(url, guarded, PER_ROUND))
    await upstream.close_sessions()
    return results


async def _resolve_cost(connector_class: type) -> float:
    """Microseconds per `_resolve_host` on a warm DNS cache entry of two public addresses:
    what each new connection pays."""
    connector = connector_class(ttl_dns_cache=300)
    connector._cached_hosts.add(
        ("api.example.com", 443),
        [
            {"hostname": "api.example.com", "host": a, "port": 443, "family": 2, "proto": 6, "flags": 0}
            for a in ("162.159.140.245", "172.66.0.243")
        ],
    )
    n = 20000
    started = time.perf_counter()
    for _ in range(n):
        await connector._resolve_host("api.example.com", 443)
    elapsed = (time.perf_counter() - started) / n * 1e6
    await connector.close()
    return elapsed


def main() -> None:
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = True
    with fake_upstream() as (fake, _state):
        results = asyncio.run(_pools(fake))
    print(f"sequential upstream calls, {ROUNDS} rounds x {PER_ROUND}, setting true (median of rounds):")
    plain = statistics.median(results["plain pool"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:13s} {median:8.1f} us/call  ({median / plain:.3f}x)")
    for allowed in (True, False):
        settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = allowed
        plain_resolve = asyncio.run(_resolve_cost(aiohttp.TCPConnector))
        guarded_resolve = asyncio.run(_resolve_cost(GuardedTCPConnector))
        print(
            f"per new connection, setting {str(allowed).lower()}, warm DNS entry: "
            f"plain {plain_resolve:.2f} us, guarded {guarded_resolve:.2f} us"
        )
    per_request = timeit.timeit(lambda: upstream.deployment_bases("openai"), number=100000) / 100000 * 1e6
    print(f"per request, deployment_bases(): {per_request:.2f} us")


if __name__ == "__main__":
    main()
