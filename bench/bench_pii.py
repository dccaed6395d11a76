"""Cost of the `redact_pii` step on typical 2 KB LLM spans.

Prints spans/s and microseconds per span for: a no-op walk over the same
fields (the floor any redactor pays), redaction with every built-in detector
through each prefilter (the RE2 set the step uses; Hyperscan for comparison,
when installed; none: every exact pattern on every string), and the ratio to
the walk; for clean spans and for spans whose user message carries one e-mail
address or phone number, at ~2 KB and ~4 KB per span.

    python bench/bench_pii.py [--spans 2000] [--repeat 7]
"""

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.routing import pii
from apps.routing.context import TransformContext, TransformReport

_TEXT = (
    "the model answers a question about which Python code should be written and why the "
    "function returns a list of results while the user asks for step by step reasoning with "
    "examples in 3 steps over 2024 data including version 1.2.3 and 250 tokens per request"
)
WORDS = _TEXT.split(" ")
SYSTEM = (
    "You are a helpful assistant for Acme Corp. Answer briefly, cite sources, never reveal "
    "internal notes. Today is 2024-05-17. Use markdown: lists, code blocks and tables."
)


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_span(rng: random.Random, i: int, pii_value: str | None, answer_words: int) -> dict:
    user = words(rng, 40)
    if pii_value:
        cut = rng.randrange(len(user))
        user = f"{user[:cut]} {pii_value} {user[cut:]}"
    answer = words(rng, answer_words)
    return {
        "id": f"span-{i}",
        "trace_id": f"trace-{i // 4}",
        "parent_id": None,
        "session_id": "sess-42",
        "user_id": "user-1234",
        "name": "chat.completions",
        "kind": "llm",
        "start_time": "2024-05-17T10:00:00.000Z",
        "end_time": "2024-05-17T10:00:01.250Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": "ok",
        "request": {
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
            "prompt": None,
            "parameters": {"temperature": 0.2, "max_tokens": 512},
        },
        "response": {
            "content": answer,
            "messages": [],
            "usage": {"input_tokens": 120, "output_tokens": 310, "total_tokens": 430},
            "finish_reason": "stop",
        },
        "metadata": {"environment": "production", "version": "1.4.2", "tags": {"team": "search"}},
        "metrics": {"latency_ms": 1250},
        "error": None,
        "attributes": {"gen_ai.system": "openai", "http.route": "/v1/chat"},
    }


def noop_walk(span: dict) -> dict:
    """Visit every string under the default fields as the redactor does, changing nothing."""

    def visit(node):
        if isinstance(node, dict):
            for value in node.values():
                if isinstance(value, (dict, list)):
                    visit(value)
        elif isinstance(node, list):
            for value in node:
                if isinstance(value, (dict, list)):
                    visit(value)
        return node

    for key in ("request", "response", "metadata", "attributes"):
        visit(span.get(key))
    return span


def measure(fn, spans: list[dict], repeat: int) -> tuple[float, float]:
    """Best and median seconds per span over `repeat` passes."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for span in spans:
            fn(span)
        times.append((time.perf_counter() - start) / len(spans))
    return min(times), statistics.median(times)


def hyperscan_gate():
    """The same prefilter on Hyperscan (not a dependency: measured only when installed): a plain
    database answers "anything?", a start-of-match one then gives the windows."""
    try:
        import hyperscan
    except ImportError:
        return None
    patterns = pii._ALL_PATTERNS

    def build(flag):
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(
            expressions=[p.body.encode() for p in patterns],
            ids=list(range(len(patterns))),
            elements=len(patterns),
            flags=[flag | (hyperscan.HS_FLAG_CASELESS if p.gate_flags else 0) for p in patterns],
        )
        return database, hyperscan.Scratch(database)

    (any_db, any_scratch), (where_db, where_scratch) = build(0), build(hyperscan.HS_FLAG_SOM_LEFTMOST)

    def stop(*_args):
        return True

    def on_hit(index, start, end, _flags, windows):
        window = windows.setdefault(index, [start, end])
        window[0], window[1] = min(window[0], start), max(window[1], end)

    def gate(text):
        data = text.encode("utf-8", "surrogatepass")
        try:
            any_db.scan(data, match_event_handler=stop, scratch=any_scratch)
        except hyperscan.ScanTerminated:
            pass
        else:
            return {}
        windows = {}
        where_db.scan(data, match_event_handler=on_hit, context=windows, scratch=where_scratch)
        if len(data) != len(text):
            return {index: [0, len(text)] for index in windows}
        return windows

    return gate


def engines() -> list[tuple[str, object]]:
    found = [("re2 set", pii._re2_gate)]
    other = hyperscan_gate()
    if other is not None:
        found.append(("hyperscan", other))
    found.append(("none", lambda text: {i: [0, len(text)] for i in range(len(pii._ALL_PATTERNS))}))
    return found


def run(label: str, spans: list[dict], repeat: int, ctx: TransformContext) -> None:
    size = statistics.mean(len(json.dumps(s)) for s in spans)
    print(f"\n{label}: {len(spans)} spans of ~{size:,.0f} bytes of JSON, best of {repeat}")
    base, _ = measure(noop_walk, spans, repeat)
    print(f"  {'no-op walk':<30} {1 / base:>10,.0f} spans/s {base * 1e6:7.2f} us/span")
    for name, gate in engines():
        for mode in ("mask", "hash"):
            redactor = pii.compile_redactor({"type": "redact_pii", "mode": mode}, where="bench")
            object.__setattr__(redactor, "_gate", gate)
            report = TransformReport()
            best, median = measure(lambda span, r=redactor, rep=report: r(span, ctx, rep), spans, repeat)
            print(
                f"  {f'all detectors, {name}, {mode}':<30} {1 / best:>10,.0f} spans/s "
                f"{best * 1e6:7.2f} us/span (median {median * 1e6:6.2f}) = walk x{best / base:4.1f}; "
                f"{sum(report.redactions.values()) / repeat:,.0f} found per pass"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(7)
    ctx = TransformContext(hash_key=b"bench-key")
    planted = ["jane.doe@example.com", "+44 20 7946 0958", "(555) 123-4567"]
    for answer_words in (180, 450):
        clean = [make_span(rng, i, None, answer_words) for i in range(args.spans)]
        dirty = [make_span(rng, i, planted[i % len(planted)], answer_words) for i in range(args.spans)]
        run(f"clean, {answer_words}-word answer", clean, args.repeat, ctx)
        run(f"one e-mail or phone each, {answer_words}-word answer", dirty, args.repeat, ctx)


if __name__ == "__main__":
    main()
