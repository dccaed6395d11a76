"""Helicone: the async (manual) logging endpoint of the Helicone worker, one request per span
(the API has no batch). `POST {api_url}/custom/v1/log` (any model), or `/oai/v1/log` when
the provider is OpenAI so Helicone parses and prices the body as an OpenAI call; default
host `https://api.worker.helicone.ai`. Auth: `Authorization: Bearer <Helicone key>`.

Body, as built by Helicone's `HeliconeManualLogger` (helicone-helpers):

- `providerRequest` {url: "custom-model-nopath", json: {model, messages | prompt,
  ...parameters}, meta: {Helicone-* headers}}. Tool and retrieval spans carry `_type`
  ("tool" / "vector_db") and `toolName`, as the helpers' tool logging does.
- `providerResponse` {status, headers, json}: an OpenAI-shaped chat completion
  (`choices[].message`, `usage{prompt_tokens, completion_tokens, total_tokens}`); an error
  span sends status 500 and `{"error": {...}}`.
- `timing` {startTime/endTime: {seconds, milliseconds}, timeToFirstToken (ms)}.

Hierarchy and identity go in `meta` (the worker merges it with the request's headers):
- `Helicone-Session-Id` is the trace id and `Helicone-Session-Path` the names of the
  span's ancestors found in the batch, root first ("/agent/llm"); Helicone has no span ids,
  its sessions are the trace tree. `Helicone-Session-Name` is the root span's name when the
  root is in the batch, else the span's own name.
- `Helicone-Request-Id` is a UUID derived from the span id, so a re-sent span keeps its id.
- `Helicone-User-Id` from user_id; the canonical session (conversation) id, tags,
  environment, version, provider and the estimated cost are `Helicone-Property-*` values
  (Helicone computes cost itself from model and tokens and has no cost field).

Limits: 10 MB per body (larger answers 400 "Payload too large"). Answers: 200 is stored,
except a 200 whose JSON body carries `error` (the worker could not store it), which is
retried; 400 and 401 are not; 429 and 5xx are retried. The EU logging host is not
documented; set `api_url` for it.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from apps.destinations.connectors._spans import (
    ancestors,
    as_dict,
    end_of,
    error_text,
    metrics_of,
    number,
    parse_time,
    stable_uuid,
    start_of,
    tags_of,
    usage_of,
)
from apps.destinations.connectors.base import Connector, HttpRequest, Outcome, api_key
from apps.destinations.models import Destination

DEFAULT_API_URL = "https://api.worker.helicone.ai"
MAX_BODY = 10 * 1000 * 1000
TOOL_TYPES = {"tool": "tool", "retrieval": "vector_db"}


def _timestamp(moment) -> dict[str, int]:
    millis = int(round(moment.timestamp() * 1000))
    return {"seconds": millis // 1000, "milliseconds": millis % 1000}


def _segment(span: dict[str, Any]) -> str:
    return str(span.get("name") or span.get("kind") or "span").replace("/", "_")


def _property(name: str) -> str:
    """A header-safe property name ("environment" -> "Helicone-Property-environment")."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)
    return f"Helicone-Property-{safe}"


class HeliconeConnector(Connector):
    type = "helicone"
    label = "Helicone"
    fields = (api_key(),)
    max_batch_spans = 1  # one log per request: there is no batch endpoint
    max_request_bytes = MAX_BODY

    def endpoint(self, destination: Destination) -> str:
        return (destination.config.get("api_url") or DEFAULT_API_URL).rstrip("/")

    def path(self, span: dict[str, Any]) -> str:
        return "/oai/v1/log" if str(span.get("provider") or "").lower() == "openai" else "/custom/v1/log"

    def meta(self, span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, str]:
        chain, missing = ancestors(span, by_id)
        root = [*chain, span][0] if missing is None else None
        meta = {
            "Helicone-Request-Id": str(stable_uuid(span.get("id"))),
            "Helicone-Session-Id": str(span.get("trace_id") or span.get("id")),
            "Helicone-Session-Path": "/" + "/".join(_segment(s) for s in [*chain, span]),
            "Helicone-Session-Name": _segment(root if root is not None else span),
        }
        if span.get("user_id"):
            meta["Helicone-User-Id"] = str(span["user_id"])
        metadata = as_dict(span.get("metadata"))
        properties: dict[str, Any] = {
            "session_id": span.get("session_id"),
            "environment": metadata.get("environment"),
            "version": metadata.get("version"),
            "provider": span.get("provider"),
            "kind": span.get("kind"),
            "span_id": span.get("id"),
            "parent_id": span.get("parent_id"),
            "estimated_cost": metrics_of(span).get("estimated_cost"),
            **tags_of(span),
        }
        for name, value in properties.items():
            if value is not None:
                meta[_property(name)] = str(value).replace("\r", " ").replace("\n", " ")
        return meta

    def body(self, span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
        request = as_dict(span.get("request"))
        response = as_dict(span.get("response"))
        metrics = metrics_of(span)
        kind = span.get("kind") or "span"

        req_json: dict[str, Any] = {}
        if span.get("model"):
            req_json["model"] = span["model"]
        if request.get("messages") is not None:
            req_json["messages"] = request["messages"]
        if request.get("prompt") is not None:
            req_json["prompt"] = request["prompt"]
        for key, value in as_dict(request.get("parameters")).items():
            req_json.setdefault(key, value)
        if kind in TOOL_TYPES:
            req_json["_type"] = TOOL_TYPES[kind]
            req_json["toolName"] = span.get("name") or kind
        attributes = span.get("attributes")
        if attributes and kind != "llm":
            req_json.setdefault("attributes", attributes)

        error = error_text(span)
        usage = usage_of(span)
        res_json: dict[str, Any] = {}
        if span.get("model"):
            res_json["model"] = span["model"]
        messages = response.get("messages")
        if isinstance(messages, list) and messages:
            choices = [
                {"index": i, "message": m, "finish_reason": response.get("finish_reason")}
                for i, m in enumerate(messages)
            ]
        elif response.get("content") is not None:
            message = {"role": "assistant", "content": response["content"]}
            choices = [{"index": 0, "message": message, "finish_reason": response.get("finish_reason")}]
        else:
            choices = []
        if choices:
            res_json["object"] = "chat.completion"
            res_json["choices"] = choices
        tokens = {
            key: int(usage[key])
            for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            if number(usage.get(key)) is not None
        }
        if tokens:
            tokens.setdefault(
                "total_tokens", tokens.get("prompt_tokens", 0) + tokens.get("completion_tokens", 0)
            )
            res_json["usage"] = tokens
        if kind in TOOL_TYPES:
            res_json["_type"] = TOOL_TYPES[kind]
            res_json["toolName"] = req_json["toolName"]
        if error is not None:
            err = as_dict(span.get("error"))
            res_json["error"] = {"message": error, "type": err.get("type") or "error"}

        body: dict[str, Any] = {
            "providerRequest": {
                "url": "custom-model-nopath",
                "json": req_json,
                "meta": self.meta(span, by_id),
            },
            "providerResponse": {
                "status": 500 if error is not None else 200,
                "headers": {},
                "json": res_json,
            },
        }
        start = parse_time(span.get("start_time")) or start_of(span)
        end = end_of(span) or start
        if start is not None:
            timing: dict[str, Any] = {"startTime": _timestamp(start), "endTime": _timestamp(end)}
            ttft = number(metrics.get("time_to_first_token_ms"))
            if ttft is not None:
                timing["timeToFirstToken"] = ttft
            body["timing"] = timing
        return body

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        by_id = {span["id"]: span for span in spans if span.get("id")}
        base = self.endpoint(destination)
        headers = {
            "content-type": "application/json",
            "authorization": f"Bearer {destination.secrets.get('api_key') or ''}",
            "user-agent": "untrace-helicone/1",
        }
        requests = []
        for span in spans:
            body = orjson.dumps(self.body(span, by_id), option=orjson.OPT_NON_STR_KEYS, default=str)
            requests.append(HttpRequest("POST", base + self.path(span), dict(headers), body, 1))
        return requests

    def classify(self, response: httpx.Response) -> Outcome:
        outcome = super().classify(response)
        if outcome.ok:
            try:
                answer = response.json()
            except ValueError:
                return outcome
            if isinstance(answer, dict) and answer.get("error"):
                return Outcome(
                    ok=False,
                    retryable=True,
                    status=outcome.status,
                    message=f"helicone could not store the log: {str(answer['error'])[:200]}",
                    body=outcome.body,
                )
        return outcome
