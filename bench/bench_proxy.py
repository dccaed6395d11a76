"""The proxy against calling the provider directly, side by side in one run.

A fake OpenAI API (tests/fakes/llm_upstream.py, its own process) stands in for
the provider; two web processes proxy to it, one capturing traces and one with
UNTRACE_PROXY_CAPTURE=false; the load generator (aiohttp, this process) calls
all three over loopback. Printed: latency at concurrency 1 (interleaved
rounds, so drift hits every target alike), throughput at concurrency
CONCURRENCY, and the time to the first streamed chunk; every number next to
the direct one, with the difference and the ratio.

Run: .venv/bin/python bench/bench_proxy.py   (needs local PostgreSQL and Redis)
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import bench_env, scratch_database
from tests import live

ROUNDS = 20
PER_ROUND = 100  # sequential requests per target per round
CONCURRENCY = 32
THROUGHPUT_SECONDS = 5.0
STREAMS = 300
SETTLE = 0.2  # seconds between rounds

CHAT = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "How do I retry a flaky HTTP call with backoff? " * 4},
        ],
        "temperature": 0.2,
    }
)
STREAM = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)


@contextmanager
def fake_provider():
    port = live.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.llm_upstream", "--port", str(port)], cwd=live.ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "fake provider did not start"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


async def one(session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        assert response.status == 200, response.status
    return time.perf_counter() - started


async def first_chunk(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    async with session.post(url, data=STREAM, headers=headers) as response:
        await response.content.readany()
        elapsed = time.perf_counter() - started
        await response.read()
    return elapsed


async def latencies(targets: dict[str, tuple[str, dict[str, str]]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in targets}
    async with aiohttp.ClientSession() as session:
        for url, headers in targets.values():  # warm-up: connections, key cache, code paths
            for _ in range(200):
                await one(session, url, headers, CHAT)
        for _ in range(ROUNDS):
            for name, (url, headers) in targets.items():
                for _ in range(PER_ROUND):
                    out[name].append(await one(session, url, headers, CHAT))
                # Let the traced server store its batch, so its writes do not land in the next
                # target's round (2 cores here: the load generator, fake, proxy and PostgreSQL share them).
                await asyncio.sleep(SETTLE)
    return out


async def throughput(url: str, headers: dict[str, str]) -> float:
    done = 0
    deadline = time.perf_counter() + THROUGHPUT_SECONDS

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one(session, url, headers, CHAT)
            done += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started)


async def stream_latencies(targets: dict[str, tuple[str, dict[str, str]]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in targets}
    async with aiohttp.ClientSession() as session:
        for url, headers in targets.values():
            for _ in range(50):
                await first_chunk(session, url, headers)
        for _ in range(STREAMS // 50):
            for name, (url, headers) in targets.items():
                for _ in range(50):
                    out[name].append(await first_chunk(session, url, headers))
                await asyncio.sleep(SETTLE)
    return out


def row(label: str, direct: float, value: float, unit: str = "ms") -> str:
    return f"{label:<38} {direct:>9.3f} {value:>9.3f} {value - direct:>+9.3f} {value / direct:>7.2f}x  {unit}"


def main() -> None:
    with ExitStack() as stack:
        fake = stack.enter_context(fake_provider())
        database_url, key = stack.enter_context(scratch_database())
        env = bench_env(database_url)
        env["UNTRACE_OPENAI_UPSTREAM"] = fake
        traced = stack.enter_context(live.web_server(env))
        untraced = stack.enter_context(live.web_server({**env, "UNTRACE_PROXY_CAPTURE": "false"}))

        json_headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        proxy_headers = {**json_headers, "X-Untrace-Key": key}
        path = "/v1/proxy/openai/chat/completions"
        targets = {
            "direct": (f"{fake}/v1/chat/completions", json_headers),
            "proxy": (f"{traced}{path}", proxy_headers),
            "proxy, capture off": (f"{untraced}{path}", proxy_headers),
        }

        lat = asyncio.run(latencies(targets))
        direct, proxy, off = lat["direct"], lat["proxy"], lat["proxy, capture off"]
        n = len(direct)
        print(f"chat completion (non-streaming), concurrency 1, {n} requests per target, interleaved")
        print(f"{'':<38} {'direct':>9} {'proxy':>9} {'added':>9} {'ratio':>8}")
        print(row("p50 latency", pct(direct, 0.5), pct(proxy, 0.5)))
        print(row("p99 latency", pct(direct, 0.99), pct(proxy, 0.99)))
        print(row("mean latency", statistics.mean(direct) * 1000, statistics.mean(proxy) * 1000))
        print(f"{'':<38} {'off':>9} {'on':>9} {'added':>9} {'ratio':>8}")
        print(row("capture off vs on, p50", pct(off, 0.5), pct(proxy, 0.5)))
        print(row("capture off vs on, p99", pct(off, 0.99), pct(proxy, 0.99)))

        direct_rps = asyncio.run(throughput(*targets["direct"]))
        proxy_rps = asyncio.run(throughput(*targets["proxy"]))
        print(f"\nthroughput, concurrency {CONCURRENCY}, {THROUGHPUT_SECONDS:.0f} s, one web process")
        print(f"{'':<38} {'direct':>9} {'proxy':>9} {'':>9} {'ratio':>8}")
        print(
            f"{'requests/s':<38} {direct_rps:>9.0f} {proxy_rps:>9.0f} {'':>9} {proxy_rps / direct_rps:>7.2f}x"
        )

        streams = asyncio.run(stream_latencies({k: targets[k] for k in ("direct", "proxy")}))
        print(
            f"\nstreaming chat completion, time to first chunk, {len(streams['direct'])} streams per target"
        )
        print(f"{'':<38} {'direct':>9} {'proxy':>9} {'added':>9} {'ratio':>8}")
        print(row("p50 time to first chunk", pct(streams["direct"], 0.5), pct(streams["proxy"], 0.5)))
        print(row("p99 time to first chunk", pct(streams["direct"], 0.99), pct(streams["proxy"], 0.99)))


if __name__ == "__main__":
    main()
