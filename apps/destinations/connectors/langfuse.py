"""Langfuse, over its OTLP endpoint (default) or the legacy JSON ingestion API.

Both use HTTP Basic auth with the public key as user and the secret key as password, against `host`
(`api_url` overrides it: a region, a self-hosted install).

`api: otlp`: `POST {host}/api/public/otel/v1/traces`, an OTLP protobuf body with Langfuse's own attributes
(langfuse.observation.*, langfuse.trace.*) and the GenAI conventions, and `x-langfuse-ingestion-version: 4`
so a v4 deployment processes the spans in real time (a higher value gets 400). 512 spans per request (the
SDK's `flush_at`) and 3.5 MB per body.

`api: ingestion`: `POST {host}/api/public/ingestion` with `{batch: [event, ...]}`: one `trace-create` per
trace in the request (trace fields: name, user, session, tags, environment, version; Langfuse merges
repeated ones) and one `generation-create` (llm and embedding spans) or `span-create` (everything else) per
span. A request that parses gets 207 with `{successes, errors}` per event envelope id; the errors become
`item_errors`. Batches are at most 3.5 MB (the documented limit).

Ids are the OTLP ones (32 hex characters for a trace, 16 for an observation) in both modes, so switching
modes does not duplicate anything; envelope ids are uuid5s of what the event carries, stable across retries.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from apps.destinations.connectors import otlp_encoding as otlp
from apps.destinations.connectors.base import Connector, Field, HttpRequest, Outcome
from apps.destinations.models import Destination

OTLP_PATH = "/api/public/otel/v1/traces"
INGESTION_PATH = "/api/public/ingestion"
INGESTION_VERSION = "4"
MAX_BATCH_BYTES = 3_500_000
EVENT_NAMESPACE = uuid.UUID("5b0f7a3e-5d8c-4d55-9a43-3b1c5f0e9a21")
GENERATION_KINDS = ("llm", "embedding")


def langfuse_trace_id(span: dict[str, Any]) -> str:
    return otlp.trace_id(otlp.canonical_trace_id(span)).hex()


def langfuse_observation_id(canonical: Any) -> str:
    return otlp.span_id(canonical).hex()


def iso_ms(value: Any) -> str | None:
    """ISO-8601 in UTC with millisecond precision, as the ingestion API requires."""
    moment = otlp.parse_time(value)
    if moment is None:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _map_value(value: Any) -> Any:
    """modelParameters values are str | int | float | bool | [str]; anything else goes as JSON."""
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return otlp.dumps(value)


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None and v != {} and v != []}


def trace_body(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """The trace of these spans (all with the same trace id): root span fields when the root is here."""
    root = next((s for s in spans if not s.get("parent_id")), None)
    first = root or spans[0]
    metadata = {k: v for span in reversed(spans) for k, v in (span.get("metadata") or {}).items() if v}
    tags = sorted({tag for span in spans for tag in otlp.tags_of(span)})
    return _compact(
        {
            "id": langfuse_trace_id(first),
            "timestamp": iso_ms(first.get("start_time")),
            "name": root.get("name") if root else None,
            "userId": next((s["user_id"] for s in spans if s.get("user_id")), None),
            "sessionId": next((s["session_id"] for s in spans if s.get("session_id")), None),
            "input": otlp.input_payload(root) if root else None,
            "output": otlp.output_payload(root) if root else None,
            "tags": tags,
            "environment": metadata.get("environment"),
            "version": metadata.get("version"),
        }
    )


def observation_body(span: dict[str, Any]) -> dict[str, Any]:
    metadata = {
        **otlp.metadata_of(span),
        "kind": span.get("kind"),
        "provider": span.get("provider"),
        "metrics": span.get("metrics"),
        "attributes": span.get("attributes"),
    }
    error = span.get("error") or {}
    failed = span.get("status") == "error" or bool(error)
    body = {
        "id": langfuse_observation_id(span.get("id")),
        "traceId": langfuse_trace_id(span),
        "parentObservationId": langfuse_observation_id(span["parent_id"]) if span.get("parent_id") else None,
        "name": span.get("name"),
        "startTime": iso_ms(span.get("start_time")),
        "endTime": iso_ms(span.get("end_time")),
        "input": otlp.input_payload(span),
        "output": otlp.output_payload(span),
        "metadata": {k: v for k, v in metadata.items() if v not in (None, {}, [])},
        "level": "ERROR" if failed else "DEFAULT",
        "statusMessage": (error.get("message") or error.get("type") or "error") if failed else None,
        "version": (span.get("metadata") or {}).get("version"),
        "environment": (span.get("metadata") or {}).get("environment"),
    }
    if span.get("kind") in GENERATION_KINDS:
        usage = otlp.usage_of(span)
        parameters = (span.get("request") or {}).get("parameters") or {}
        cost = otlp.cost_of(span)
        body |= {
            "model": span.get("model"),
            "completionStartTime": iso_ms(otlp.completion_start(span)),
            "modelParameters": {k: _map_value(v) for k, v in parameters.items() if v is not None},
            "usageDetails": {
                name: usage[key]
                for name, key in (
                    ("input", "prompt_tokens"),
                    ("output", "completion_tokens"),
                    ("total", "total_tokens"),
                )
                if isinstance(usage.get(key), int)
            },
            "costDetails": {"total": cost} if cost is not None else None,
        }
    return _compact(body)


def _event(kind: str, body: dict[str, Any], timestamp: str | None, key: str, span_id: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(EVENT_NAMESPACE, f"{kind}:{key}")),
        "type": kind,
        "timestamp": timestamp or iso_ms(datetime.now(UTC).isoformat()),  # a span without times: now
        "metadata": {"span_id": span_id},
        "body": body,
    }


def ingestion_events(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """trace-create per trace (its envelope id names the spans sent with it, so later batches of the same
    trace are not taken for duplicates), then one observation event per span."""
    traces: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        traces.setdefault(langfuse_trace_id(span), []).append(span)
    events = []
    for trace_id, members in traces.items():
        body = trace_body(members)
        key = trace_id + ":" + ",".join(sorted(str(s.get("id")) for s in members))
        events.append(_event("trace-create", body, body.get("timestamp"), key, None))
    for span in spans:
        kind = "generation-create" if span.get("kind") in GENERATION_KINDS else "span-create"
        body = observation_body(span)
        timestamp = iso_ms(span.get("end_time")) or body.get("startTime") or iso_ms(span.get("received_at"))
        key = f"{body['traceId']}:{body['id']}"
        events.append(_event(kind, body, timestamp, key, span.get("id")))
    return events


class LangfuseConnector(otlp.OtlpExport, Connector):
    type = "langfuse"
    label = "Langfuse"
    fields = (
        Field("host", "url", default="https://cloud.langfuse.com", help="Cloud region or self-hosted URL"),
        Field("public_key", required=True),
        Field("secret_key", required=True, secret=True),
        Field(
            "api",
            "choice",
            default="otlp",
            choices=("otlp", "ingestion"),
            help="ingestion: older self-hosted",
        ),
    )
    max_batch_spans = 512
    max_request_bytes = MAX_BATCH_BYTES
    styles = (otlp.GENAI, otlp.LANGFUSE)
    user_agent = "untrace-langfuse/1"

    def endpoint(self, destination: Destination) -> str:
        host = (
            destination.config.get("api_url")
            or destination.config.get("host")
            or "https://cloud.langfuse.com"
        )
        return host.rstrip("/")

    def _auth(self, destination: Destination) -> str:
        public = destination.config.get("public_key") or destination.secrets.get("public_key") or ""
        secret = destination.secrets.get("secret_key") or ""
        return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()

    def traces_url(self, destination: Destination) -> str:
        return self.endpoint(destination) + OTLP_PATH

    def export_headers(self, destination: Destination) -> dict[str, str]:
        return {"authorization": self._auth(destination), "x-langfuse-ingestion-version": INGESTION_VERSION}

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        if destination.config.get("api") != "ingestion":
            return super().build_requests(destination, spans, message_id=message_id)
        url = self.endpoint(destination) + INGESTION_PATH
        headers = {
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "authorization": self._auth(destination),
        }
        requests = []
        pending = [spans[i : i + self.max_batch_spans] for i in range(0, len(spans), self.max_batch_spans)]
        while pending:
            part = pending.pop(0)
            body = orjson.dumps({"batch": ingestion_events(part)}, default=str)
            if len(body) > self.max_request_bytes and len(part) > 1:
                half = len(part) // 2
                pending[:0] = [part[:half], part[half:]]
                continue
            requests.append(HttpRequest("POST", url, dict(headers), body, len(part)))
        return requests

    def classify(self, response: httpx.Response) -> Outcome:
        """207 from the ingestion API: delivered, with each failed event's span in `item_errors`."""
        outcome = super().classify(response)
        if response.status_code != 207:
            return outcome
        try:
            errors = orjson.loads(response.content).get("errors") or []
        except (orjson.JSONDecodeError, AttributeError):
            return outcome
        if not errors:
            return outcome
        spans_by_event = _event_spans(response)
        item_errors = [
            {
                "span_id": spans_by_event.get(error.get("id")),
                "status": error.get("status"),
                "message": str(error.get("message") or error.get("error") or "")[:500],
                "event_id": error.get("id"),
            }
            for error in errors
            if isinstance(error, dict)
        ]
        return Outcome(
            ok=True,
            status=207,
            body=outcome.body,
            message=f"langfuse refused {len(item_errors)} events",
            item_errors=item_errors,
        )


def _event_spans(response: httpx.Response) -> dict[str, Any]:
    """Envelope id -> canonical span id, read back from the request the answer is for."""
    try:
        batch = orjson.loads(response.request.content).get("batch") or []
    except (RuntimeError, orjson.JSONDecodeError, AttributeError):
        return {}
    return {event.get("id"): (event.get("metadata") or {}).get("span_id") for event in batch}
