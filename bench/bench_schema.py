"""Decode and validate a batch of 1,000 canonical spans of about 2.4 KB each.

Prints the time per batch (median and best of the runs) and spans/s for
``decode_batch`` on spans whose keys are all known (custom ``metadata`` keys
included), on spans that also carry an unknown top-level field (kept in
``attributes``), and, for scale, for parsing the same body with msgspec (no
validation) and with the stdlib ``json``.

    python bench/bench_schema.py [--spans 1000] [--repeat 50]
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.traces.schema import SpanLimits, decode_batch

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "the",
    "model",
    "answers",
]


def text(n_chars: int, seed: int) -> str:
    out, i = [], seed
    while sum(len(w) + 1 for w in out) < n_chars:
        out.append(WORDS[i % len(WORDS)])
        i += 7
    return " ".join(out)[:n_chars]


def make_span(i: int) -> dict:
    return {
        "id": f"span-{i:08d}",
        "trace_id": f"trace-{i // 10:08d}",
        "parent_id": f"span-{i - 1:08d}" if i % 10 else None,
        "session_id": "session-42",
        "user_id": f"user-{i % 97}",
        "name": "chat.completions",
        "kind": "llm",
        "start_time": "2025-01-15T10:00:00.123Z",
        "end_time": 1736935201456 + i,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "request": {
            "messages": [
                {"role": "system", "content": text(400, i)},
                {"role": "user", "content": text(600, i + 1)},
            ],
            "parameters": {"temperature": 0.2, "max_tokens": 512, "top_p": 1, "stream": False},
        },
        "response": {
            "content": text(500, i + 2),
            "usage": {"prompt_tokens": 250, "completion_tokens": 120, "total_tokens": 370},
            "finish_reason": "stop",
        },
        "metadata": {
            "environment": "production",
            "version": "1.4.2",
            "tags": {"team": "search", "feature": "answers", "tier": "pro"},
            "customer_id": f"cus_{i}",
        },
        "metrics": {"latency_ms": 1333.0, "time_to_first_token_ms": 210.5, "estimated_cost": 0.000123},
        "error": None,
    }


def measure(fn, body: bytes, repeat: int) -> tuple[float, float]:
    fn(body)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(body)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    spans = [make_span(i) for i in range(args.spans)]
    known = json.dumps({"traces": spans}).encode()
    for span in spans:
        span["sdk"] = "untrace-python/0.1.0"
    unknown = json.dumps({"traces": spans}).encode()
    limits = SpanLimits(max_items_per_batch=max(args.spans, 1))
    for body in (known, unknown):
        result = decode_batch(body, limits=limits)
        assert len(result.spans) == args.spans and not result.errors, result.errors[:3]

    def batch(body: bytes) -> object:
        return decode_batch(body, limits=limits)

    rows = [
        ("decode_batch, known fields", batch, known),
        ("decode_batch, + unknown field", batch, unknown),
        ("msgspec.json.decode (parse only)", msgspec.json.decode, known),
        ("json.loads (parse only)", json.loads, known),
    ]
    print(f"{args.spans} spans, {len(known) / args.spans:.0f} bytes/span, {len(known) / 1e6:.2f} MB body")
    print(f"{'':34s} {'median':>8s} {'best':>8s} {'spans/s (median)':>18s}")
    baseline = None
    for label, fn, body in rows:
        median, best = measure(fn, body, args.repeat)
        baseline = baseline or median
        print(
            f"{label:34s} {median * 1e3:6.2f}ms {best * 1e3:6.2f}ms {args.spans / median:18,.0f}"
            f"   x{median / baseline:.2f}"
        )


if __name__ == "__main__":
    main()
