"""LangWatch: traces posted to the collector, `POST {api_url}/api/collector` (default host
`https://app.langwatch.ai`), authenticated with `X-Auth-Token: <project API key>`; the
Content-Type must be exactly `application/json`.

Body (`CollectorRESTParams` of the `langwatch` SDK): `{trace_id, spans: [...], metadata}`.
All spans of a request share one trace_id, so spans are grouped by trace, and at most 200
spans (more answers 429) and 8 MiB (the body limit is 10 MB) go in one request. Re-posting a
trace merges it, so a trace split over several requests, or sent again, ends up whole.

Span mapping:
- `type`: llm, chain, tool, agent, span as they are; embedding is an llm call; retrieval
  is rag (with `contexts` from `response.documents` when present).
- `span_id`, `parent_id`, `trace_id`, `name`.
- `model`: "provider/model" when the provider is known (the form LangWatch's model price
  table is keyed by; marked unverified in the notes: LangWatch has no provider field).
- `input` / `output` are typed values: chat_messages for messages (roles outside
  LangWatch's set become "unknown"), text for a prompt or a text answer.
- `timestamps` {started_at, first_token_at, finished_at} in epoch milliseconds (13 digits;
  a span without any time gets the time of sending).
- `params`: the request parameters; `metrics` {prompt_tokens, completion_tokens, cost}.
- `error` {message, stacktrace: [lines]}.

Trace metadata: `user_id`, `thread_id` (the canonical session id), `labels` (tags as
"key:value") and the canonical metadata (environment, version, ...), nested at most two
levels (deeper values are sent as JSON strings), taken from the root span when it is in
the request, else from the first span carrying them.

Answers: 200 ("Trace received successfully." or "No changes" for an identical resend) is
delivered; 400, 401, 405 are not retried; 429 is retried except `ERR_PLAN_LIMIT` (the
monthly plan limit, which a retry cannot clear); 5xx is retried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from apps.destinations.connectors._spans import (
    as_dict,
    end_of,
    epoch_ms,
    group_by,
    metrics_of,
    number,
    parse_time,
    split_bodies,
    start_of,
    tag_list,
    usage_of,
)
from apps.destinations.connectors.base import Connector, HttpRequest, Outcome, api_key
from apps.destinations.models import Destination

DEFAULT_API_URL = "https://app.langwatch.ai"
SPAN_TYPES = {
    "llm": "llm",
    "embedding": "llm",
    "chain": "chain",
    "agent": "agent",
    "tool": "tool",
    "retrieval": "rag",
    "span": "span",
}
CHAT_ROLES = {"system", "user", "assistant", "function", "tool", "guardrail", "evaluation", "unknown"}
PRIMITIVES = (str, int, float, bool, type(None))


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        return {"role": "unknown", "content": str(message)}
    out = dict(message)
    if out.get("role") not in CHAT_ROLES:
        out["role"] = "unknown"
    content = out.get("content")
    if content is not None and not isinstance(content, str):
        out["content"] = orjson.dumps(content, default=str).decode()
    return out


def _typed(value: Any, *, chat: bool) -> dict[str, Any] | None:
    if value is None:
        return None
    if chat:
        return {"type": "chat_messages", "value": [_message(m) for m in value]}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    return {"type": "json", "value": value}


def _meta_value(value: Any, depth: int = 0) -> Any:
    """A metadata value nested at most two levels; deeper structures become JSON strings."""
    if isinstance(value, PRIMITIVES):
        return value
    if isinstance(value, list) and all(isinstance(v, PRIMITIVES) for v in value):
        return value
    if isinstance(value, dict) and depth < 2:
        return {str(k): _meta_value(v, depth + 1) for k, v in value.items()}
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


class LangWatchConnector(Connector):
    type = "langwatch"
    label = "LangWatch"
    fields = (api_key(),)
    max_batch_spans = 200
    max_request_bytes = 8 * 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        return (destination.config.get("api_url") or DEFAULT_API_URL).rstrip("/")

    def span(self, span: dict[str, Any], now: datetime) -> dict[str, Any]:
        request = as_dict(span.get("request"))
        response = as_dict(span.get("response"))
        metrics = metrics_of(span)
        usage = usage_of(span)
        kind = span.get("kind") or "span"
        out: dict[str, Any] = {
            "type": SPAN_TYPES.get(kind, "span"),
            "name": span.get("name") or kind,
            "span_id": str(span.get("id")),
            "parent_id": str(span["parent_id"]) if span.get("parent_id") else None,
            "trace_id": str(span.get("trace_id") or span.get("id")),
            # Every key of the SDK's span type is present, null when the span has no value for it.
            "input": None,
            "output": None,
            "error": None,
            "params": None,
            "metrics": None,
        }
        model = span.get("model")
        if model:
            provider = span.get("provider")
            out["model"] = f"{provider}/{model}" if provider and "/" not in str(model) else model

        messages = request.get("messages")
        if isinstance(messages, list):
            out["input"] = _typed(messages, chat=True)
        elif request.get("prompt") is not None:
            out["input"] = _typed(request["prompt"], chat=False)
        out_messages = response.get("messages")
        if isinstance(out_messages, list) and out_messages:
            out["output"] = _typed(out_messages, chat=True)
        elif response.get("content") is not None:
            content = response["content"]
            if isinstance(messages, list) and isinstance(content, str):
                out["output"] = _typed([{"role": "assistant", "content": content}], chat=True)
            else:
                out["output"] = _typed(content, chat=False)
        if kind == "retrieval" and isinstance(response.get("documents"), list):
            out["contexts"] = [
                {"content": d}
                if not isinstance(d, dict)
                else {
                    "content": d.get("content", d),
                    **{k: str(d[k]) for k in ("document_id", "chunk_id") if d.get(k) is not None},
                }
                for d in response["documents"]
            ]

        start = start_of(span) or now
        end = end_of(span) or start
        timestamps: dict[str, int] = {"started_at": epoch_ms(start), "finished_at": epoch_ms(max(end, start))}
        ttft = number(metrics.get("time_to_first_token_ms"))
        if ttft is not None and parse_time(span.get("start_time")) is not None:
            timestamps["first_token_at"] = timestamps["started_at"] + int(round(ttft))
        out["timestamps"] = timestamps

        if request.get("parameters"):
            out["params"] = request["parameters"]
        span_metrics: dict[str, Any] = {}
        for key in ("prompt_tokens", "completion_tokens"):
            if number(usage.get(key)) is not None:
                span_metrics[key] = int(usage[key])
        reasoning = number(as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"))
        if reasoning is not None:
            span_metrics["reasoning_tokens"] = int(reasoning)
        cost = number(metrics.get("estimated_cost"))
        if cost is not None:
            span_metrics["cost"] = float(cost)
        if span_metrics:
            out["metrics"] = span_metrics

        error = as_dict(span.get("error"))
        if error or span.get("status") == "error":
            message = ": ".join(str(p) for p in (error.get("type"), error.get("message")) if p) or "error"
            stack = str(error.get("stack") or "")
            out["error"] = {"message": message, "stacktrace": stack.splitlines() if stack else []}
        return out

    def trace_metadata(self, spans: list[dict[str, Any]]) -> dict[str, Any]:
        ordered = sorted(spans, key=lambda s: bool(s.get("parent_id")))  # the root first when present
        metadata: dict[str, Any] = {}
        labels: list[str] = []
        for span in ordered:
            for key, value in as_dict(span.get("metadata")).items():
                if key != "tags" and value is not None:
                    metadata.setdefault(str(key), _meta_value(value))
            if span.get("user_id"):
                metadata.setdefault("user_id", str(span["user_id"]))
            if span.get("session_id"):
                metadata.setdefault("thread_id", str(span["session_id"]))
            labels.extend(tag for tag in tag_list(span) if tag not in labels)
        if labels:
            metadata["labels"] = labels
        return metadata

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        now = datetime.now(UTC)
        url = f"{self.endpoint(destination)}/api/collector"
        headers = {
            "content-type": "application/json",
            "x-auth-token": str(destination.secrets.get("api_key") or ""),
            "user-agent": "untrace-langwatch/1",
        }
        requests = []
        for trace_id, group in group_by(spans, lambda s: str(s.get("trace_id") or s.get("id"))).items():
            metadata = self.trace_metadata(group)

            def encode(part: list[dict[str, Any]], trace_id: str = trace_id, metadata=metadata) -> bytes:
                body = {
                    "trace_id": trace_id,
                    "spans": [self.span(s, now) for s in part],
                    "metadata": metadata,
                }
                return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS, default=str)

            for body, part in split_bodies(
                group, encode, max_items=self.max_batch_spans, max_bytes=self.max_request_bytes
            ):
                requests.append(HttpRequest("POST", url, dict(headers), body, len(part)))
        return requests

    def classify(self, response: httpx.Response) -> Outcome:
        outcome = super().classify(response)
        if response.status_code == 429 and "ERR_PLAN_LIMIT" in response.text:
            return Outcome(
                ok=False,
                retryable=False,
                status=429,
                message="langwatch plan limit reached (ERR_PLAN_LIMIT)",
                body=outcome.body,
            )
        return outcome
