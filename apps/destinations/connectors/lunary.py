"""Lunary: run events posted to `POST {api_url}/v1/runs/ingest` as `{"events": [...]}`.

Auth is `Authorization: Bearer <project key>`, as Lunary's Python SDK sends it (the
key names the project; the optional `project` setting is not sent). The default host
is `https://api.lunary.ai`, the SDK's default.

Each span becomes a pair of events sharing a `runId`: `start` (at the span's start:
`type`, `name`, `parentRunId`, `input`, `params`, `tags`, `metadata`, `userId`) and
`end` (at its end: `output`, `tokensUsage {prompt, completion}`), or `error` (with
`error {message, stack}`) for a failed span. The server orders events by `timestamp`
(a span without times is stamped with its end, its receipt, or the time of sending)
and computes llm cost on `end`; the span's own estimate goes in `metadata.cost`.

Ids: Lunary keys runs by UUID, so `runId` and `parentRunId` are uuid5 of the
canonical span ids; a re-sent span keeps them. Lunary has no trace id: the run tree
(parentRunId) carries the hierarchy and the canonical trace and session ids go in
`metadata`. Kinds: llm -> llm, embedding -> embed, retrieval -> retriever, chain and
span -> chain, agent and tool keep their name; an llm run's `name` is the model.

Answers: 200 `{"results": [{"id", "success", "error"?}]}` per event. Failed events are
reported per span as `item_errors`; a repeated `start` of a run the platform already
holds (a retry after a lost answer) is not counted as a failure. 401 means the project
does not exist and 402 a malformed project key: both are permanent.

Limits: not documented; 250 spans (500 events) and 1 MiB per request, the default JSON
body limit of the server's framework, are used.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from apps.destinations.connectors.base import Connector, Field, HttpRequest, Outcome, api_key
from apps.destinations.models import Destination

DEFAULT_URL = "https://api.lunary.ai"
PATH = "/v1/runs/ingest"
TYPES = {
    "llm": "llm",
    "embedding": "embed",
    "retrieval": "retriever",
    "chain": "chain",
    "agent": "agent",
    "tool": "tool",
    "span": "chain",
}
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "untrace:lunary")
DUPLICATE_HINTS = ("already", "duplicate", "exists")


def run_id(value: Any) -> str:
    """The Lunary run id of a canonical span id (uuid5, so re-sends keep it)."""
    return str(uuid.uuid5(NAMESPACE, str(value)))


def _iso(value: Any) -> str | None:
    """The timestamp as ISO-8601 UTC with milliseconds, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _input(span: dict[str, Any]) -> Any:
    request = span.get("request") or {}
    if request.get("messages"):
        return request["messages"]
    return request.get("prompt")


def _output(span: dict[str, Any], run_type: str) -> Any:
    response = span.get("response") or {}
    if response.get("messages"):
        messages = response["messages"]
        return messages[0] if run_type == "llm" and len(messages) == 1 else messages
    if response.get("content") is None:
        return None
    if run_type == "llm":
        return {"role": "assistant", "content": response["content"]}
    return response["content"]


def _metadata(span: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (span.get("metadata") or {}).items() if k != "tags"}
    metadata["span_id"] = str(span["id"])
    for key in ("trace_id", "session_id", "provider", "kind"):
        if span.get(key):
            metadata[key] = span[key]
    response = span.get("response") or {}
    if response.get("finish_reason"):
        metadata["finish_reason"] = response["finish_reason"]
    timings = span.get("metrics") or {}
    if timings.get("estimated_cost") is not None:
        metadata["cost"] = timings["estimated_cost"]
    for key in ("latency_ms", "time_to_first_token_ms", "time_per_output_token_ms", "tokens_per_second"):
        if timings.get(key) is not None:
            metadata[key] = timings[key]
    if span.get("attributes"):
        metadata["attributes"] = span["attributes"]
    return metadata


def to_events(span: dict[str, Any]) -> list[dict[str, Any]]:
    """One canonical span as its start event and its end (or error) event."""
    run_type = TYPES.get(span.get("kind") or "", "chain")
    rid = run_id(span["id"])
    start = (
        _iso(span.get("start_time"))
        or _iso(span.get("end_time"))
        or _iso(span.get("received_at"))
        or _iso(datetime.now(UTC).isoformat())
    )
    end = _iso(span.get("end_time")) or start
    name = span.get("model") if run_type == "llm" and span.get("model") else span.get("name")
    opening: dict[str, Any] = {
        "type": run_type,
        "event": "start",
        "runId": rid,
        "name": name or span.get("kind") or "span",
        "input": _input(span),
        "metadata": _metadata(span),
        "runtime": "untrace",
        "timestamp": start,
    }
    if span.get("parent_id"):
        opening["parentRunId"] = run_id(span["parent_id"])
    params = (span.get("request") or {}).get("parameters")
    if params:
        opening["params"] = params
    extra = (span.get("metadata") or {}).get("tags") or {}
    if isinstance(extra, dict):
        tags = [f"{k}:{v}" for k, v in extra.items()]
    else:
        tags = [str(t) for t in extra] if isinstance(extra, list) else []
    if tags:
        opening["tags"] = tags
    if span.get("user_id"):
        opening["userId"] = str(span["user_id"])
    closing: dict[str, Any] = {"type": run_type, "runId": rid, "timestamp": end}
    error = span.get("error")
    if error or span.get("status") == "error":
        error = error or {}
        message = ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part)
        closing["event"] = "error"
        closing["error"] = {"message": message or "error"}
        if error.get("stack"):
            closing["error"]["stack"] = error["stack"]
    else:
        closing["event"] = "end"
        closing["output"] = _output(span, run_type)
    usage = (span.get("response") or {}).get("usage") or {}
    if usage.get("prompt_tokens") is not None or usage.get("completion_tokens") is not None:
        closing["tokensUsage"] = {
            "prompt": usage.get("prompt_tokens") or 0,
            "completion": usage.get("completion_tokens") or 0,
        }
    return [opening, closing]


class LunaryConnector(Connector):
    type = "lunary"
    label = "Lunary"
    fields = (api_key(), Field("project"))
    max_batch_spans = 250
    max_request_bytes = 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        return (destination.config.get("api_url") or DEFAULT_URL).rstrip("/") + PATH

    def _bodies(self, spans: list[dict[str, Any]]) -> list[tuple[bytes, int]]:
        """A span's two events always travel in the same request."""
        bodies: list[tuple[bytes, int]] = []
        part: list[bytes] = []
        count = 0
        overhead = len(b'{"events":[]}')
        size = overhead
        for span in spans:
            encoded = b",".join(orjson.dumps(event, default=str) for event in to_events(span))
            if part and (size + len(encoded) + 1 > self.max_request_bytes or count >= self.max_batch_spans):
                bodies.append((b'{"events":[' + b",".join(part) + b"]}", count))
                part, count, size = [], 0, overhead
            part.append(encoded)
            count += 1
            size += len(encoded) + 1
        if part:
            bodies.append((b'{"events":[' + b",".join(part) + b"]}", count))
        return bodies

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        headers = {
            "content-type": "application/json",
            "authorization": f"Bearer {destination.secrets.get('api_key') or ''}",
            "user-agent": "untrace-lunary/1",
        }
        url = self.endpoint(destination)
        return [HttpRequest("POST", url, dict(headers), body, count) for body, count in self._bodies(spans)]

    def classify(self, response: httpx.Response) -> Outcome:
        """401 (no such project) and 402 (malformed project key) are permanent, as
        every 4xx but the retryable ones; a 200 lists each event's result."""
        outcome = super().classify(response)
        if not outcome.ok:
            return outcome
        try:
            results = response.json().get("results")
        except (ValueError, AttributeError):
            return outcome
        if not isinstance(results, list):
            return outcome
        spans = _span_ids(response)
        failed: dict[str, str] = {}
        for result in results:
            if not isinstance(result, dict) or result.get("success", True):
                continue
            error = str(result.get("error") or "refused")
            if any(hint in error.lower() for hint in DUPLICATE_HINTS):
                continue
            rid = str(result.get("id") or "")
            failed.setdefault(spans.get(rid, rid), error)
        item_errors = [
            {"span_id": span_id, "status": "rejected", "message": message}
            for span_id, message in failed.items()
        ]
        return Outcome(ok=True, status=outcome.status, body=outcome.body, item_errors=item_errors)


def _span_ids(response: httpx.Response) -> dict[str, str]:
    """runId -> canonical span id, read back from the request that was sent."""
    try:
        events = orjson.loads(response.request.content)["events"]
    except (RuntimeError, ValueError, KeyError, TypeError):
        return {}
    return {
        event["runId"]: event["metadata"]["span_id"]
        for event in events
        if isinstance(event, dict)
        and isinstance(event.get("metadata"), dict)
        and "span_id" in event["metadata"]
    }
