"""HoneyHive: events posted in batches to `POST {api_url}/events/batch`.

Auth is `Authorization: Bearer <api key>`. The body is `{"events": [event, ...]}`; each
event names its `project`, an `event_type` (`model`, `tool` or `chain`), `inputs`,
`outputs`, `config` (model, provider and request parameters), `metadata` (token counts,
cost, the rest of the span's metadata), `metrics`, `error` (a string), `start_time` and
`end_time` (Unix ms) and `duration` (ms). HoneyHive answers 200
`{"event_ids": [...], "success": true}`.

Hierarchy: a HoneyHive session is one trace. `session_id` is a UUID derived (uuid5)
from the canonical trace id, `event_id` one derived from the span id, and `parent_id`
the parent span's derived id, or the session id for a root (HoneyHive's own default).
The same span re-sent keeps its ids. The canonical `session_id` (a conversation) goes
in `metadata.session`, the user in `user_properties.user_id`.

Decisions where the notes leave a choice:
- The route is `/events/batch`, the one HoneyHive's Python SDK (`events.create_batch`)
  still calls: it takes the project by name in each event, which is what the `project`
  setting holds. `/v1/events/batch` rejects that field (its project comes from the key).
- The default host is the SDK's current `https://api.dp1.us.honeyhive.ai`; older
  docs name `https://api.honeyhive.ai`, still reachable through `api_url`.
- Kinds: llm and embedding -> model; tool and retrieval -> tool; chain, agent and span
  -> chain (the original kind is kept in `metadata.kind`).
- Model inputs follow HoneyHive's convention `{"chat_history": [messages]}` and outputs
  `{"role": "assistant", "content": ...}`.

Limits: no documented batch size; 500 events and 5 MiB per request are used.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from apps.destinations.connectors.base import Connector, Field, HttpRequest, Outcome, api_key
from apps.destinations.models import Destination

DEFAULT_URL = "https://api.dp1.us.honeyhive.ai"
PATH = "/events/batch"
EVENT_TYPES = {
    "llm": "model",
    "embedding": "model",
    "tool": "tool",
    "retrieval": "tool",
    "chain": "chain",
    "agent": "chain",
    "span": "chain",
}
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "untrace:honeyhive")


def stable_uuid(value: Any) -> str:
    """The UUID HoneyHive gets for a canonical id (uuid5, so re-sends keep it)."""
    return str(uuid.uuid5(NAMESPACE, str(value)))


def _ms(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000, 3)


def _inputs(span: dict[str, Any], event_type: str) -> dict[str, Any]:
    request = span.get("request") or {}
    inputs: dict[str, Any] = {}
    if request.get("messages"):
        inputs["chat_history" if event_type == "model" else "messages"] = request["messages"]
    if request.get("prompt") is not None:
        inputs["prompt"] = request["prompt"]
    return inputs


def _outputs(span: dict[str, Any], event_type: str) -> dict[str, Any] | None:
    response = span.get("response") or {}
    outputs: dict[str, Any] = {}
    if response.get("content") is not None:
        if event_type == "model":
            outputs["role"] = "assistant"
        outputs["content"] = response["content"]
    if response.get("messages"):
        outputs["messages"] = response["messages"]
    if response.get("finish_reason"):
        outputs["finish_reason"] = response["finish_reason"]
    return outputs or None


def _metadata(span: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(span.get("metadata") or {})
    metadata.update(kind=span.get("kind") or "span", span_id=str(span["id"]))
    usage = (span.get("response") or {}).get("usage") or {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if usage.get(key) is not None:
            metadata[key] = usage[key]
    cost = (span.get("metrics") or {}).get("estimated_cost")
    if cost is not None:
        metadata["cost"] = cost
    if span.get("session_id"):
        metadata["session"] = span["session_id"]
    if span.get("trace_id"):
        metadata["trace_id"] = span["trace_id"]
    if span.get("status"):
        metadata["status"] = span["status"]
    error = span.get("error") or {}
    if error.get("stack"):
        metadata["error_stack"] = error["stack"]
    if span.get("attributes"):
        metadata["attributes"] = span["attributes"]
    return metadata


def to_event(span: dict[str, Any], project: str) -> dict[str, Any]:
    """One canonical span as a HoneyHive event."""
    event_type = EVENT_TYPES.get(span.get("kind") or "", "chain")
    session_id = stable_uuid(span.get("trace_id") or span["id"])
    event: dict[str, Any] = {
        "project": project,
        "source": "untrace",
        "event_name": span.get("name") or span.get("model") or span.get("kind") or "unknown",
        "event_type": event_type,
        "event_id": stable_uuid(span["id"]),
        "session_id": session_id,
        "parent_id": stable_uuid(span["parent_id"]) if span.get("parent_id") else session_id,
        "inputs": _inputs(span, event_type),
        "metadata": _metadata(span),
    }
    config = dict((span.get("request") or {}).get("parameters") or {})
    if span.get("model"):
        config["model"] = span["model"]
    if span.get("provider"):
        config["provider"] = span["provider"]
    if config:
        event["config"] = config
    outputs = _outputs(span, event_type)
    if outputs is not None:
        event["outputs"] = outputs
    error = span.get("error")
    if error:
        kind, message = error.get("type"), error.get("message")
        event["error"] = ": ".join(str(part) for part in (kind, message) if part) or "error"
    elif span.get("status") == "error":
        event["error"] = "error"
    start, end = _ms(span.get("start_time")), _ms(span.get("end_time"))
    timings = span.get("metrics") or {}
    if start is not None:
        event["start_time"] = start
    if end is not None:
        event["end_time"] = end
    if start is not None and end is not None:
        event["duration"] = round(end - start, 3)
    elif timings.get("latency_ms") is not None:
        event["duration"] = timings["latency_ms"]
    metrics = {k: v for k, v in timings.items() if k != "estimated_cost" and v is not None}
    if metrics:
        event["metrics"] = metrics
    if span.get("user_id"):
        event["user_properties"] = {"user_id": span["user_id"]}
    return event


class HoneyHiveConnector(Connector):
    type = "honeyhive"
    label = "HoneyHive"
    fields = (api_key(), Field("project", required=True))
    max_batch_spans = 500
    max_request_bytes = 5 * 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        return (destination.config.get("api_url") or DEFAULT_URL).rstrip("/") + PATH

    def _bodies(self, events: list[bytes]) -> list[tuple[bytes, int]]:
        bodies: list[tuple[bytes, int]] = []
        part: list[bytes] = []
        overhead = len(b'{"events":[]}')
        size = overhead
        for encoded in events:
            if part and (
                size + len(encoded) + 1 > self.max_request_bytes or len(part) >= self.max_batch_spans
            ):
                bodies.append((b'{"events":[' + b",".join(part) + b"]}", len(part)))
                part, size = [], overhead
            part.append(encoded)
            size += len(encoded) + 1
        if part:
            bodies.append((b'{"events":[' + b",".join(part) + b"]}", len(part)))
        return bodies

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        project = str(destination.config.get("project") or "")
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "authorization": f"Bearer {destination.secrets.get('api_key') or ''}",
            "user-agent": "untrace-honeyhive/1",
        }
        events = [orjson.dumps(to_event(span, project), default=str) for span in spans]
        url = self.endpoint(destination)
        return [HttpRequest("POST", url, dict(headers), body, count) for body, count in self._bodies(events)]

    def classify(self, response: httpx.Response) -> Outcome:
        """A 200 whose body says `"success": false` is a refusal of the whole batch."""
        outcome = super().classify(response)
        if not outcome.ok:
            return outcome
        try:
            payload = response.json()
        except ValueError:
            return outcome
        if isinstance(payload, dict) and payload.get("success") is False:
            return Outcome(
                ok=False,
                retryable=False,
                status=outcome.status,
                message="honeyhive refused the batch",
                body=outcome.body,
            )
        return outcome
