"""Canonical spans shared by the LLM-platform connector tests (LangSmith, Keywords AI,
Helicone, LangWatch): a three-span trace (agent -> llm, agent -> failing tool), a bare span
and a destination builder."""

from __future__ import annotations

import copy
from typing import Any

from apps.destinations.models import Destination

TRACE = "0af7651916cd43dd8448eb211c80319c"


def agent_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "id": "span-root",
        "trace_id": TRACE,
        "parent_id": None,
        "session_id": "sess-1",
        "user_id": "user-1",
        "name": "support-agent",
        "kind": "agent",
        "start_time": "2026-01-02T03:04:05.000000Z",
        "end_time": "2026-01-02T03:04:08.000Z",
        "status": "ok",
        "request": {"messages": [{"role": "user", "content": "Where is my order?"}]},
        "response": {"content": "It ships tomorrow."},
        "metadata": {"environment": "prod", "version": "1.2.0", "tags": {"team": "support"}},
        "received_at": "2026-01-02T03:04:09Z",
    }
    span.update(overrides)
    return span


def llm_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "id": "span-llm-1",
        "trace_id": TRACE,
        "parent_id": "span-root",
        "session_id": "sess-1",
        "user_id": "user-1",
        "name": "chat gpt-4o",
        "kind": "llm",
        "start_time": "2026-01-02T03:04:05.123456Z",
        "end_time": "2026-01-02T03:04:06.500Z",
        "provider": "openai",
        "model": "gpt-4o",
        "status": "ok",
        "request": {
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Where is my order?"},
            ],
            "parameters": {"temperature": 0.2, "max_tokens": 256, "user": "abc"},
        },
        "response": {
            "content": "It ships tomorrow.",
            "messages": [{"role": "assistant", "content": "It ships tomorrow."}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
            "finish_reason": "stop",
        },
        "metadata": {
            "environment": "prod",
            "version": "1.2.0",
            "tags": {"team": "support", "tier": "gold"},
            "untrace": {"sample_rate": 1.0, "sampled_by": "rule", "rule": "all"},
        },
        "metrics": {
            "latency_ms": 1376.5,
            "time_to_first_token_ms": 210,
            "time_per_output_token_ms": 30.5,
            "tokens_per_second": 3.6,
            "estimated_cost": 0.00042,
        },
        "attributes": {"http.status_code": 200},
        "received_at": "2026-01-02T03:04:07Z",
    }
    span.update(overrides)
    return span


def tool_error_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "id": "span-tool-1",
        "trace_id": TRACE,
        "parent_id": "span-root",
        "name": "lookup_order",
        "kind": "tool",
        "start_time": "2026-01-02T03:04:06.600Z",
        "end_time": "2026-01-02T03:04:06.900Z",
        "status": "error",
        "request": {"prompt": "order 42"},
        "error": {"type": "TimeoutError", "message": "orders API timed out", "stack": "line 1\nline 2"},
        "metadata": {"tags": {"team": "support"}},
    }
    span.update(overrides)
    return span


def bare_span() -> dict[str, Any]:
    return {"id": "span-bare", "trace_id": "trace-bare"}


def trace() -> list[dict[str, Any]]:
    return [agent_span(), llm_span(), tool_error_span()]


def destination(type_: str, config: dict[str, Any] | None = None, api_key: str = "key-123") -> Destination:
    dest = Destination(type=type_, config=copy.deepcopy(config or {}))
    dest.secrets = {"api_key": api_key}
    return dest
