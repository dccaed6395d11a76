"""Cost to the application of one Python SDK span: create it, enter it, end it (queue included).

The client is real (its queue, lock and background sender thread, which encodes
and gzips every batch); only the HTTP post is replaced by an in-process 202, so
no network is involved. Printed beside an empty context manager, the floor of
any `with` block.

Run: .venv/bin/python bench/bench_sdk.py [--spans 100000]
(the SDK is installed in the venv: pip install -e ./sdks/python)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from untrace_sdk import Untrace
from untrace_sdk._client import _Answer


class Empty:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class NoNetwork(Untrace):
    def _post(self, body: bytes) -> _Answer:
        return _Answer(202, b"{}", None)


def _percentiles(samples: list[int]) -> tuple[float, float, float]:
    samples.sort()
    n = len(samples)
    return (
        samples[n // 2] / 1000,
        samples[min(n - 1, int(n * 0.99))] / 1000,
        statistics.fmean(samples) / 1000,
    )


def measure(count: int) -> dict[str, tuple[float, float, float]]:
    client = NoNetwork(api_key="ut_bench", base_url="http://127.0.0.1:9", max_queue=5 * count + 10_000)
    clock = time.perf_counter_ns
    empty = Empty()
    results = {}

    def run(label: str, body) -> None:
        for _ in range(2000):  # warm up
            body()
        samples = [0] * count
        for i in range(count):
            start = clock()
            body()
            samples[i] = clock() - start
        results[label] = _percentiles(samples)

    def empty_cm() -> None:
        with empty:
            pass

    def span() -> None:
        with client.span("step"):
            pass

    def span_with_fields() -> None:
        with client.span("call", "llm") as s:
            s.set_model("gpt-4o-mini", provider="openai")
            s.set_usage(12, 5)
            s.set_tags(team="search")

    def nested() -> None:
        with client.span("parent"), client.span("child"):
            pass

    gc.collect()
    run("empty context manager", empty_cm)
    run("span (create, enter, end)", span)
    run("span + model, usage, tags", span_with_fields)
    run("parent + child (2 spans)", nested)
    started = time.perf_counter()
    client.flush(300)
    results["_sent"] = (client.sent, client.dropped, time.perf_counter() - started)
    client.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=100_000)
    args = parser.parse_args()
    results = measure(args.spans)
    sent, dropped, drain = results.pop("_sent")
    print(f"Python SDK span cost over {args.spans:,} iterations each (µs, wall clock per iteration)")
    print(f"{'':30} {'p50':>8} {'p99':>8} {'mean':>8}")
    for label, (p50, p99, mean) in results.items():
        print(f"{label:30} {p50:8.2f} {p99:8.2f} {mean:8.2f}")
    print(f"spans encoded and posted by the sender: {int(sent):,}, dropped: {int(dropped)}")
    print(f"after the loops the sender needed {drain:.2f} s more to drain the queue (encoding, gzip)")
    span_p50, span_p99, _ = results["span (create, enter, end)"]
    ok = span_p50 <= 20 and span_p99 <= 100
    print(f"targets p50 <= 20 µs, p99 <= 100 µs: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
