"""Datadog LLM Observability: the span intake of its HTTP API.

`POST https://api.{site}/api/intake/llm-obs/v1/trace/spans` with the `DD-API-KEY`
header and a JSON body `{"data": {"type": "span", "attributes": {"ml_app", "tags",
"spans": [...]}}}`; Datadog answers 202 with an empty body. `api_url` replaces
`https://api.{site}` (the path is kept), for a proxy or a test recorder.

Each span carries `span_id`, `trace_id`, `parent_id` (the literal `"undefined"` for a
root), `name`, `start_ns` (epoch ns), `duration` (ns), `status`, `meta` (kind, model,
input/output, metadata, error), `metrics`, `session_id` and `key:value` tags. The
canonical ids are sent unchanged, so a re-sent span keeps its ids.

Decisions where the documentation is not explicit:
- `model_name`/`model_provider` go in `meta`, where dd-trace puts them; older pages
  show them inside `meta.metadata` too, which is not repeated here.
- The estimated cost goes in `metrics.total_cost` (USD), the key dd-trace uses for a
  provider-reported cost; Datadog otherwise derives cost from model and tokens.
- Time metrics are in seconds (`time_to_first_token`, `time_per_output_token`), as
  dd-trace reports them.
- Kinds: chain -> workflow, span -> task; the others keep their name.

Limits: a request body stays under 5 MiB (the server takes ~5.1 MB) and holds at
most 1,000 spans (dd-trace's buffer size); a single span over 5 MB has its
input/output replaced by a note, as dd-trace does. Datadog ignores spans older than
24 hours; they are sent anyway, as nothing here knows the platform's clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from apps.destinations.connectors.base import MAX_ERROR_BODY, Connector, Field, HttpRequest, Outcome, api_key
from apps.destinations.models import Destination

PATH = "/api/intake/llm-obs/v1/trace/spans"
MAX_EVENT_BYTES = 5_000_000
DROPPED_IO = "[This value has been dropped because this span's size exceeds the 5MB size limit.]"
KINDS = {
    "llm": "llm",
    "embedding": "embedding",
    "chain": "workflow",
    "agent": "agent",
    "tool": "tool",
    "retrieval": "retrieval",
    "span": "task",
}


def _ns(value: Any) -> int | None:
    """Epoch nanoseconds of an ISO-8601 string (naive means UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def _messages(messages: Any) -> list[dict[str, str]]:
    out = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            out.append(
                {"role": str(message.get("role") or ""), "content": _text(message.get("content") or "")}
            )
    return out


def _io(span: dict[str, Any], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input, output): messages for llm spans, documents into an embedding, values elsewhere."""
    request = span.get("request") or {}
    response = span.get("response") or {}
    source, prompt = request.get("messages"), request.get("prompt")
    reply = response.get("messages") or (
        [{"role": "assistant", "content": response["content"]}]
        if response.get("content") is not None
        else None
    )
    inp: dict[str, Any] = {}
    out: dict[str, Any] = {}
    if kind == "llm":
        if source:
            inp["messages"] = _messages(source)
        elif prompt is not None:
            inp["messages"] = [{"role": "user", "content": _text(prompt)}]
        if reply:
            out["messages"] = _messages(reply)
        return inp, out
    if kind == "embedding" and prompt is not None:
        texts = prompt if isinstance(prompt, list) else [prompt]
        inp["documents"] = [{"text": _text(text)} for text in texts]
    elif source or prompt is not None:
        inp["value"] = _text(source if source else prompt)
    if response.get("content") is not None:
        out["value"] = _text(response["content"])
    elif response.get("messages"):
        out["value"] = _text(response["messages"])
    return inp, out


def _metrics(span: dict[str, Any]) -> dict[str, float]:
    usage = (span.get("response") or {}).get("usage") or {}
    timings = span.get("metrics") or {}
    metrics: dict[str, float] = {}
    for key, name in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
        if isinstance(usage.get(key), int | float):
            metrics[name] = usage[key]
    if isinstance(usage.get("total_tokens"), int | float):
        metrics["total_tokens"] = usage["total_tokens"]
    elif "input_tokens" in metrics or "output_tokens" in metrics:
        metrics["total_tokens"] = metrics.get("input_tokens", 0) + metrics.get("output_tokens", 0)
    for key, name in (
        ("time_to_first_token_ms", "time_to_first_token"),
        ("time_per_output_token_ms", "time_per_output_token"),
    ):
        if isinstance(timings.get(key), int | float):
            metrics[name] = timings[key] / 1000
    if isinstance(timings.get("estimated_cost"), int | float):
        metrics["total_cost"] = timings["estimated_cost"]
    return metrics


def _tags(span: dict[str, Any]) -> list[str]:
    metadata = span.get("metadata") or {}
    tags = []
    for name, value in (
        ("user_id", span.get("user_id")),
        ("session_id", span.get("session_id")),
        ("env", metadata.get("environment")),
        ("version", metadata.get("version")),
    ):
        if value:
            tags.append(f"{name}:{value}")
    extra = metadata.get("tags") or {}
    if isinstance(extra, dict):
        tags.extend(f"{name}:{value}" for name, value in extra.items())
    elif isinstance(extra, list):
        tags.extend(str(tag) for tag in extra)
    return tags


def to_span(span: dict[str, Any]) -> dict[str, Any]:
    """One canonical span as a Datadog LLM Observability span."""
    kind = KINDS.get(span.get("kind") or "", "task")
    timings = span.get("metrics") or {}
    start, end = _ns(span.get("start_time")), _ns(span.get("end_time"))
    latency = timings.get("latency_ms")
    if start is None and end is not None and isinstance(latency, int | float):
        start = end - int(latency * 1_000_000)
    if start is None:
        start = _ns(span.get("received_at")) or time.time_ns()
    if end is not None and end >= start:
        duration = float(end - start)
    else:
        duration = float(latency) * 1_000_000 if isinstance(latency, int | float) else 0.0
    inp, out = _io(span, kind)
    meta: dict[str, Any] = {"kind": kind}
    if span.get("model"):
        meta["model_name"] = span["model"]
    if span.get("provider"):
        meta["model_provider"] = span["provider"]
    if inp:
        meta["input"] = inp
    if out:
        meta["output"] = out
    metadata = dict((span.get("request") or {}).get("parameters") or {})
    metadata.update({k: v for k, v in (span.get("metadata") or {}).items() if k != "tags"})
    if (span.get("response") or {}).get("finish_reason"):
        metadata["finish_reason"] = span["response"]["finish_reason"]
    if span.get("attributes"):
        metadata["attributes"] = span["attributes"]
    if metadata:
        meta["metadata"] = metadata
    error = span.get("error")
    if error:
        meta["error"] = {k: _text(error[k]) for k in ("message", "type", "stack") if error.get(k) is not None}
    event: dict[str, Any] = {
        "name": span.get("name") or span.get("kind") or "span",
        "span_id": str(span["id"]),
        "trace_id": str(span.get("trace_id") or span["id"]),
        "parent_id": str(span["parent_id"]) if span.get("parent_id") else "undefined",
        "start_ns": start,
        "duration": duration,
        "status": "error" if span.get("status") == "error" or error else "ok",
        "meta": meta,
        "metrics": _metrics(span),
        "tags": _tags(span),
    }
    if span.get("session_id"):
        event["session_id"] = str(span["session_id"])
    return event


def _encoded(event: dict[str, Any]) -> bytes:
    body = orjson.dumps(event, default=str)
    if len(body) < MAX_EVENT_BYTES:
        return body
    event["meta"]["input"] = {"value": DROPPED_IO}
    event["meta"]["output"] = {"value": DROPPED_IO}
    event["collection_errors"] = ["dropped_io"]
    return orjson.dumps(event, default=str)


class DatadogConnector(Connector):
    type = "datadog"
    label = "Datadog LLM Observability"
    fields = (
        Field("site", default="datadoghq.com", help="datadoghq.com, datadoghq.eu, us3.datadoghq.com, ..."),
        api_key(),
        Field("ml_app", required=True, help="The ML application name spans are filed under"),
    )
    max_batch_spans = 1000
    max_request_bytes = 5 * 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        base = (
            destination.config.get("api_url")
            or f"https://api.{destination.config.get('site') or 'datadoghq.com'}"
        )
        return base.rstrip("/") + PATH

    def _bodies(self, ml_app: str, spans: list[dict[str, Any]]) -> list[tuple[bytes, int]]:
        """Spans packed in order into bodies under both limits."""
        head = orjson.dumps(ml_app)
        prefix = (
            b'{"data":{"type":"span","attributes":{"ml_app":' + head + b',"tags":["source:untrace"],"spans":['
        )
        suffix = b"]}}}"
        bodies: list[tuple[bytes, int]] = []
        part: list[bytes] = []
        size = len(prefix) + len(suffix)
        for span in spans:
            encoded = _encoded(to_span(span))
            too_big = size + len(encoded) + 1 > self.max_request_bytes
            if part and (too_big or len(part) >= self.max_batch_spans):
                bodies.append((prefix + b",".join(part) + suffix, len(part)))
                part, size = [], len(prefix) + len(suffix)
            part.append(encoded)
            size += len(encoded) + 1
        if part:
            bodies.append((prefix + b",".join(part) + suffix, len(part)))
        return bodies

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        headers = {
            "content-type": "application/json",
            "dd-api-key": str(destination.secrets.get("api_key") or ""),
            "user-agent": "untrace-datadog/1",
        }
        url = self.endpoint(destination)
        ml_app = str(destination.config.get("ml_app") or "")
        return [
            HttpRequest("POST", url, dict(headers), body, count)
            for body, count in self._bodies(ml_app, spans)
        ]

    def classify(self, response: httpx.Response) -> Outcome:
        """202 is success; errors carry `{"errors": [...]}` or `{"message"}`. A 429 may
        say when to come back in `X-RateLimit-Reset` (seconds) instead of Retry-After."""
        outcome = super().classify(response)
        if outcome.ok:
            return outcome
        detail = ""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            errors = payload.get("errors")
            detail = (
                "; ".join(map(str, errors)) if isinstance(errors, list) else str(payload.get("message") or "")
            )
        retry_after = outcome.retry_after
        reset = response.headers.get("x-ratelimit-reset", "")
        if retry_after is None and reset.isdigit():
            retry_after = float(reset)
        return Outcome(
            ok=False,
            retryable=outcome.retryable,
            status=outcome.status,
            message=f"{outcome.message}: {detail}"[:MAX_ERROR_BODY] if detail else outcome.message,
            body=outcome.body,
            retry_after=retry_after,
        )
