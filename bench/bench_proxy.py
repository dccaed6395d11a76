"""The proxy against calling the provider directly, side by side in one run.

A fake OpenAI API (tests/fakes/llm_upstream.py, its own process) stands in for
the provider; two web processes proxy to it, one capturing traces and one with
UNTRACE_PROXY_CAPTURE=false; the load generator (aiohttp, this process) calls
all three over loopback. Printed: latency at concurrency 1 (interleaved
rounds, so drift hits every target alike), throughput at concurrency
CONCURRENCY, and the time to the first streamed chunk; every number next to
the direct one, with the difference and the ratio.

With --peer litellm, LiteLLM's proxy (the version pinned below, installed on
first use into a virtualenv under tests.live.platforms_cache()) is started on
the same fake, with no database, telemetry, callbacks or spend logs, and
measured in the same rounds; its rows are printed next to the direct ones, then
Untrace's next to LiteLLM's.

Run: .venv/bin/python bench/bench_proxy.py [--peer litellm]   (needs local PostgreSQL and Redis)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


# The newest release whose requirements the package index here satisfies (later ones need a newer certifi).
LITELLM_VERSION = "1.105.3"
LITELLM_VENV = live.platforms_cache() / "litellm-venv"
PEER = "litellm"


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


def litellm_bin() -> Path:
    """The `litellm` command of the cached virtualenv, installing the pinned release on first use."""
    marker = LITELLM_VENV / f".installed-{LITELLM_VERSION}"
    if not marker.exists():
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV}", file=sys.stderr)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
        result = subprocess.run(pip, capture_output=True, text=True, timeout=1800)
        if result.returncode:
            errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
            raise SystemExit(f"--peer litellm: installing litellm failed: {(errors or ['?'])[-1]}")
        marker.touch()
        print(f"installed in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return LITELLM_VENV / "bin" / "litellm"


@contextmanager
def litellm_proxy(fake: str) -> Iterator[str]:
    """LiteLLM's proxy on loopback, every model the bench sends mapped to the fake provider.

    Quiet and local: LITELLM_LOG=ERROR, the bundled cost map, no feedback box, admin UI or docs, no
    DATABASE_URL (so no Prisma and no spend logs), no callbacks. This release sends no telemetry
    (its --telemetry flag is a no-op).
    """
    exe = litellm_bin()
    models = sorted({orjson.loads(body)["model"] for body in (CHAT, STREAM)})
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": f"{fake}/v1",
                    "api_key": "sk-dummy",
                },
            }
            for model in models
        ],
        "litellm_settings": {
            "success_callback": [],
            "failure_callback": [],
            "callbacks": [],
            "set_verbose": False,
            "json_logs": False,
        },
        # A master key, as a real deployment has (it refuses to start without one); the bench sends it.
        "general_settings": {
            "master_key": "sk-bench",
            "disable_spend_logs": True,
            "disable_error_logs": True,
        },
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LITELLM_", "UNTRACE_", "DJANGO_"))
        and k not in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST", "STORE_MODEL_IN_DB")
    }
    env.update(
        LITELLM_LOG="ERROR",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_DONT_SHOW_FEEDBACK_BOX="True",
        DISABLE_ADMIN_UI="True",
        NO_DOCS="True",
    )
    port = live.free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-litellm-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(json.dumps(config, indent=2))  # JSON is YAML
        log = Path(tmp) / "litellm.log"
        command = [str(exe), "--config", str(config_file), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--num_workers", "1"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health/liveliness", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
                    why = f"exited with {proc.returncode}" if proc.returncode is not None else "timed out"
                    tail = " | ".join(line.strip() for line in lines[-3:]) or "no output"
                    raise SystemExit(f"--peer litellm: the proxy {why}: {tail}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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


def rps_row(label: str, base: float, value: float) -> str:
    return f"{label:<38} {base:>9.0f} {value:>9.0f} {'':>9} {value / base:>7.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=[PEER], help="also measure another proxy on the same fake provider")
    peer = parser.parse_args().peer
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
        if peer:
            targets[PEER] = (f"{stack.enter_context(litellm_proxy(fake))}/v1/chat/completions", json_headers)

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
        if peer:
            other = lat[PEER]
            print(f"{'':<38} {'direct':>9} {PEER:>9} {'added':>9} {'ratio':>8}")
            print(row("p50 latency", pct(direct, 0.5), pct(other, 0.5)))
            print(row("p99 latency", pct(direct, 0.99), pct(other, 0.99)))
            print(row("mean latency", statistics.mean(direct) * 1000, statistics.mean(other) * 1000))
            print(f"{'':<38} {PEER:>9} {'untrace':>9} {'diff':>9} {'ratio':>8}")
            print(row("p50 latency", pct(other, 0.5), pct(proxy, 0.5)))
            print(row("p99 latency", pct(other, 0.99), pct(proxy, 0.99)))
            print(row("mean latency", statistics.mean(other) * 1000, statistics.mean(proxy) * 1000))
            print(row("p50 latency, untrace capture off", pct(other, 0.5), pct(off, 0.5)))
            print(row("p99 latency, untrace capture off", pct(other, 0.99), pct(off, 0.99)))

        direct_rps = asyncio.run(throughput(*targets["direct"]))
        proxy_rps = asyncio.run(throughput(*targets["proxy"]))
        print(f"\nthroughput, concurrency {CONCURRENCY}, {THROUGHPUT_SECONDS:.0f} s, one web process")
        print(f"{'':<38} {'direct':>9} {'proxy':>9} {'':>9} {'ratio':>8}")
        print(rps_row("requests/s", direct_rps, proxy_rps))
        if peer:
            peer_rps = asyncio.run(throughput(*targets[PEER]))
            print(f"{'':<38} {'direct':>9} {PEER:>9} {'':>9} {'ratio':>8}")
            print(rps_row("requests/s", direct_rps, peer_rps))
            print(f"{'':<38} {PEER:>9} {'untrace':>9} {'':>9} {'ratio':>8}")
            print(rps_row("requests/s", peer_rps, proxy_rps))

        streamed = ("direct", "proxy", PEER) if peer else ("direct", "proxy")
        streams = asyncio.run(stream_latencies({k: targets[k] for k in streamed}))
        print(
            f"\nstreaming chat completion, time to first chunk, {len(streams['direct'])} streams per target"
        )
        print(f"{'':<38} {'direct':>9} {'proxy':>9} {'added':>9} {'ratio':>8}")
        print(row("p50 time to first chunk", pct(streams["direct"], 0.5), pct(streams["proxy"], 0.5)))
        print(row("p99 time to first chunk", pct(streams["direct"], 0.99), pct(streams["proxy"], 0.99)))
        if peer:
            direct_ttfc, proxy_ttfc, peer_ttfc = streams["direct"], streams["proxy"], streams[PEER]
            print(f"{'':<38} {'direct':>9} {PEER:>9} {'added':>9} {'ratio':>8}")
            print(row("p50 time to first chunk", pct(direct_ttfc, 0.5), pct(peer_ttfc, 0.5)))
            print(row("p99 time to first chunk", pct(direct_ttfc, 0.99), pct(peer_ttfc, 0.99)))
            print(f"{'':<38} {PEER:>9} {'untrace':>9} {'diff':>9} {'ratio':>8}")
            print(row("p50 time to first chunk", pct(peer_ttfc, 0.5), pct(proxy_ttfc, 0.5)))
            print(row("p99 time to first chunk", pct(peer_ttfc, 0.99), pct(proxy_ttfc, 0.99)))


if __name__ == "__main__":
    main()
