"""Canonical spans for the Datadog, HoneyHive, Lunary and S3 connector tests: a trace of
an agent with an llm child and a failing tool child, a bare span, and a destination
builder that needs no database."""

from __future__ import annotations

from typing import Any

from apps.destinations.models import Destination

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def agent(**overrides: Any) -> dict[str, Any]:
    span = {
        "id": "span-agent",
        "trace_id": TRACE,
        "parent_id": None,
        "session_id": "conv-9",
        "user_id": "user-7",
        "name": "support-agent",
        "kind": "agent",
        "start_time": "2026-03-04T05:06:07.000Z",
        "end_time": "2026-03-04T05:06:10.500Z",
        "status": "ok",
        "request": {"messages": [{"role": "user", "content": "Where is my parcel?"}]},
        "response": {"content": "Arriving Friday."},
        "metadata": {"environment": "prod", "version": "2.1.0", "tags": {"team": "care"}},
        "received_at": "2026-03-04T05:06:11Z",
    }
    span.update(overrides)
    return span


def llm(**overrides: Any) -> dict[str, Any]:
    span = {
        "id": "span-llm",
        "trace_id": TRACE,
        "parent_id": "span-agent",
        "session_id": "conv-9",
        "user_id": "user-7",
        "name": "chat gpt-4o-mini",
        "kind": "llm",
        "start_time": "2026-03-04T05:06:07.250Z",
        "end_time": "2026-03-04T05:06:08.750Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": "ok",
        "request": {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Where is my parcel?"},
            ],
            "parameters": {"temperature": 0.3, "max_tokens": 128},
        },
        "response": {
            "content": "Arriving Friday.",
            "messages": [{"role": "assistant", "content": "Arriving Friday."}],
            "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25},
            "finish_reason": "stop",
        },
        "metadata": {
            "environment": "prod",
            "version": "2.1.0",
            "tags": {"team": "care", "tier": "gold"},
            "untrace": {"sample_rate": 0.5, "sampled_by": "rule", "rule": "prod"},
        },
        "metrics": {
            "latency_ms": 1500.0,
            "time_to_first_token_ms": 320,
            "time_per_output_token_ms": 25.0,
            "tokens_per_second": 2.7,
            "estimated_cost": 0.000123,
        },
        "attributes": {"gen_ai.system": "openai"},
        "received_at": "2026-03-04T05:06:11Z",
    }
    span.update(overrides)
    return span


def failing_tool(**overrides: Any) -> dict[str, Any]:
    span = {
        "id": "span-tool",
        "trace_id": TRACE,
        "parent_id": "span-agent",
        "session_id": "conv-9",
        "user_id": "user-7",
        "name": "lookup_parcel",
        "kind": "tool",
        "start_time": "2026-03-04T05:06:09.000Z",
        "end_time": "2026-03-04T05:06:09.400Z",
        "status": "error",
        "request": {"prompt": '{"parcel": "P-1"}'},
        "error": {"type": "TimeoutError", "message": "carrier API timed out", "stack": "Traceback ..."},
        "received_at": "2026-03-04T05:06:11Z",
    }
    span.update(overrides)
    return span


def trace() -> list[dict[str, Any]]:
    return [agent(), llm(), failing_tool()]


def bare() -> dict[str, Any]:
    return {"id": "span-bare", "trace_id": "trace-bare"}


def destination(type_: str, config: dict[str, Any], secrets: dict[str, Any]) -> Destination:
    dest = Destination(type=type_, config=config)
    dest.secrets = secrets
    return dest
