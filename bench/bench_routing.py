"""Routing engine throughput on one core: rule evaluation, sampling and PII
redaction of ~2 KB LLM spans against a 20-rule configuration.

Spans are routed in ingest batches (100 by default), as the route task does.
Prints spans/s for a no-op pass over the same spans (the loop reading each
span's trace id: the floor any router pays), for planning alone (rules +
sampling), and for the full pass (plan + the payload of every kept
destination: project-level PII redaction, rule metadata, the sampling record),
and the ratios to the no-op pass.

    python bench/bench_routing.py [--spans 20000] [--batch 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "untrace.settings_test")

import django
import orjson

django.setup()

from apps.routing.config import compile_config  # noqa: E402
from apps.routing.context import TransformContext  # noqa: E402
from apps.routing.router import plan_spans, render  # noqa: E402

DESTINATIONS = [str(uuid.UUID(int=i)) for i in range(1, 7)]
MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku",
    "gemini-1.5-pro",
    "llama-3-70b",
]
SENTENCE = (
    "the model answers questions about invoices refunds shipping orders accounts billing cycles and "
    "summarises long documents into short plain answers for the support team every day"
)
WORDS = SENTENCE.split()


def text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def make_span(i: int, rng: random.Random) -> dict:
    user = text(rng, 380)
    if i % 10 == 0:
        user += " You can reach me at jane.doe@example.com or +1 415 555 0132."
    span = {
        "id": f"span-{i}",
        "trace_id": f"trace-{i // 3}",
        "parent_id": None if i % 3 == 0 else f"span-{i - i % 3}",
        "name": "chat.completions",
        "kind": "llm",
        "start_time": "2026-11-23T10:00:00+00:00",
        "end_time": "2026-11-23T10:00:01.2+00:00",
        "provider": "anthropic" if "claude" in (model := MODELS[i % len(MODELS)]) else "openai",
        "model": model,
        "user_id": f"user-{i % 97}",
        "request": {
            "messages": [
                {"role": "system", "content": text(rng, 560)},
                {"role": "user", "content": user},
            ],
            "parameters": {"temperature": 0.2, "max_tokens": 512},
        },
        "response": {
            "content": text(rng, 880),
            "usage": {"prompt_tokens": 260, "completion_tokens": 190, "total_tokens": 450},
            "finish_reason": "stop",
        },
        "metadata": {
            "environment": rng.choice(["production", "staging"]),
            "tags": {"team": rng.choice(["a", "b"])},
        },
        "metrics": {"latency_ms": rng.uniform(200, 4000), "estimated_cost": rng.uniform(0.0001, 0.02)},
    }
    if i % 50 == 0:
        span["error"] = {"type": "RateLimitError", "message": "429 from upstream"}
    return span


def twenty_rules() -> dict:
    d = DESTINATIONS
    cond = [
        {"field": "model", "operator": "glob", "value": "gpt-4*"},
        {"field": "provider", "operator": "eq", "value": "anthropic"},
        {"field": "environment", "operator": "in", "value": ["staging", "dev"]},
        {"field": "tags.team", "operator": "eq", "value": "a"},
        {"field": "cost", "operator": "gt", "value": 0.015},
        {"field": "latency_ms", "operator": "gte", "value": 3500},
        {"field": "error.type", "operator": "exists", "value": True},
        {"field": "model", "operator": "regex", "value": "^(gemini|llama)-"},
        {"field": "tokens", "operator": "lt", "value": 100},
        {"field": "user", "operator": "contains", "value": "user-1"},
    ]
    rules = []
    for i in range(20):
        first, second = cond[i % 10], cond[(i * 3 + 1) % 10]
        conditions = {"all": [first], "any": [second, {"field": "kind", "operator": "eq", "value": "llm"}]}
        actions: dict = {"destinations": [d[i % 4]]}
        if i % 5 == 0:
            actions["sampling"] = {"rate": 0.5, "latency_threshold_ms": 3000, "cost_threshold": 0.05}
        if i == 7:
            actions = {"split": {d[4]: 50, d[5]: 50}}
        rules.append({"name": f"rule {i}", "priority": i, "conditions": conditions, "actions": actions})
    return {
        "rules": rules,
        "default_destinations": [d[0]],
        "sampling": {"rate": 1.0},
        "transformations": [{"type": "redact_pii"}],
    }


def run(label: str, fn, spans: list[dict], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(spans)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(
        f"{label:<52} {len(spans) / best:>10,.0f} spans/s  (best of {repeat}, median "
        f"{len(spans) / statistics.median(times):,.0f})"
    )
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    spans = [make_span(i, rng) for i in range(args.spans)]
    size = sum(len(orjson.dumps(s)) for s in spans) / len(spans)
    config = compile_config(twenty_rules(), version=1)
    ctx = TransformContext(hash_key=b"bench" * 8, values={"project": {"id": "p", "name": "bench"}})
    targets = 0

    batches = [spans[i : i + args.batch] for i in range(0, len(spans), args.batch)]

    def noop(_spans: list[dict]) -> None:
        for batch in batches:
            for span in batch:
                span.get("trace_id") or span["id"]

    def plan_only(_spans: list[dict]) -> None:
        for batch in batches:
            plan_spans(config, batch)

    def full(_spans: list[dict]) -> None:
        nonlocal targets
        targets = 0
        for batch in batches:
            for plan in plan_spans(config, batch):
                for target in plan.targets:
                    render(config, plan, target, ctx)
                    targets += 1

    print(
        f"{len(spans):,} spans of {size:,.0f} bytes in batches of {args.batch}, "
        f"{len(config.rules)} rules, one core"
    )
    base = run("no-op pass", noop, spans, args.repeat)
    planned = run("rules + sampling", plan_only, spans, args.repeat)
    routed = run("rules + sampling + PII redaction + payloads", full, spans, args.repeat)
    print(f"payloads rendered per span: {targets / len(spans):.2f}")
    print(f"ratio to no-op: rules + sampling {planned / base:,.0f}x, full {routed / base:,.0f}x")


if __name__ == "__main__":
    main()
