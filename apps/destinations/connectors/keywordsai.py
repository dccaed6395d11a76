"""Keywords AI: request logs posted to the batch logging endpoint,
`POST {api_url}/api/request-logs/batch/create` with `{"logs": [log, ...]}`, authenticated
with `Authorization: Bearer <api key>`. The endpoint takes up to 5000 logs and 100 MB per
request; requests here carry at most 5000 logs and 20 MiB.

`api_url` is the host (default `https://api.keywordsai.co`; enterprise
`https://endpoint.keywordsai.co`); a value already ending in `/api` is used as is.

Each canonical span becomes one log; logs of one trace are linked into a trace with
`trace_unique_id`, `span_unique_id`, `span_parent_id` and `span_name`
(`span_workflow_name` is the root span's name when the root is in the batch):

- `model`, `provider_id`; `log_type` from the kind (llm: chat, or text for a bare prompt;
  embedding; chain: workflow; agent; tool; retrieval and span: task).
- `input` / `output`: the universal fields, as strings. Chat logs send JSON strings of the
  messages in and of the assistant message out, as the docs' chat examples do; a bare
  prompt or text answer goes as the text itself. (The legacy `prompt_messages` /
  `completion_message` pair is not used: both forms are accepted and `input`/`output`
  works for every log type.)
- `usage` {prompt_tokens, completion_tokens, total_tokens}, `cost` (USD).
- `latency`, `time_to_first_token` in seconds (the unit of the docs' examples; marked
  unverified in the notes), `tokens_per_second`; `start_time` and `timestamp` (the end).
- `customer_identifier` from user_id, `thread_identifier` from session_id.
- `metadata`: the canonical metadata with tags flattened in, plus provider and
  canonical ids; request parameters that are log fields (temperature, max_tokens, ...) are
  set at top level.
- errors: `status_code` 500 and `error_message`; successful spans send 200.

Answers: 2xx is delivered. The docs say the batch endpoint reports "an error per item"
without fixing the shape; when a 2xx body lists items with an `error`, those are reported
as per-span refusals (matched by position to the logs sent). 429 and 5xx are retried.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from apps.destinations.connectors._spans import (
    as_dict,
    end_of,
    error_text,
    iso,
    metrics_of,
    number,
    parse_time,
    split_bodies,
    tags_of,
    usage_of,
)
from apps.destinations.connectors.base import Connector, HttpRequest, Outcome, api_key
from apps.destinations.models import Destination

DEFAULT_API_URL = "https://api.keywordsai.co"
LOG_TYPES = {
    "embedding": "embedding",
    "chain": "workflow",
    "agent": "agent",
    "tool": "tool",
    "retrieval": "task",
    "span": "task",
}
PARAMETERS = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "stream",
    "tools",
    "tool_choice",
    "response_format",
    "n",
    "seed",
    "reasoning_effort",
    "parallel_tool_calls",
)
MESSAGE_ROLES = {"user", "assistant", "system", "tool", "developer"}


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def _message(message: Any) -> Any:
    """Roles outside Keywords AI's set (user, assistant, system, tool, developer) become "none"."""
    if isinstance(message, dict) and message.get("role") not in MESSAGE_ROLES:
        return {**message, "role": "none"}
    return message


class KeywordsAIConnector(Connector):
    type = "keywordsai"
    label = "Keywords AI"
    fields = (api_key(),)
    max_batch_spans = 5000
    max_request_bytes = 20 * 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        base = (destination.config.get("api_url") or DEFAULT_API_URL).rstrip("/")
        return base if base.endswith("/api") else f"{base}/api"

    def _io(self, span: dict[str, Any]) -> tuple[str | None, str | None, bool]:
        """(input, output, is_chat)."""
        request = as_dict(span.get("request"))
        response = as_dict(span.get("response"))
        messages = request.get("messages")
        chat = isinstance(messages, list)
        if chat:
            input_ = _json([_message(m) for m in messages])
        elif request.get("prompt") is not None:
            prompt = request["prompt"]
            input_ = prompt if isinstance(prompt, str) else _json(prompt)
        else:
            input_ = None
        out_messages = response.get("messages")
        if isinstance(out_messages, list) and out_messages:
            chosen = out_messages[0] if len(out_messages) == 1 else out_messages
            output = _json(_message(chosen) if isinstance(chosen, dict) else [_message(m) for m in chosen])
        elif response.get("content") is not None:
            content = response["content"]
            if chat:
                output = _json({"role": "assistant", "content": content})
            else:
                output = content if isinstance(content, str) else _json(content)
        else:
            output = None
        return input_, output, chat

    def log(self, span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
        request = as_dict(span.get("request"))
        response = as_dict(span.get("response"))
        metrics = metrics_of(span)
        usage = usage_of(span)
        kind = span.get("kind") or "span"
        input_, output, chat = self._io(span)
        log: dict[str, Any] = {
            "trace_unique_id": str(span.get("trace_id") or span.get("id")),
            "span_unique_id": str(span.get("id")),
            "span_parent_id": str(span["parent_id"]) if span.get("parent_id") else None,
            "span_name": str(span.get("name") or kind)[:255],
        }
        if kind == "llm":
            log["log_type"] = "chat" if chat or input_ is None else "text"
        else:
            log["log_type"] = LOG_TYPES.get(kind, "task")
        root = span
        seen = {span.get("id")}
        while root.get("parent_id") in by_id and root["parent_id"] not in seen:
            seen.add(root["parent_id"])
            root = by_id[root["parent_id"]]
        if not root.get("parent_id") and root.get("name"):
            log["span_workflow_name"] = root["name"]
        for key, value in (("model", span.get("model")), ("provider_id", span.get("provider"))):
            if value:
                log[key] = value
        if input_ is not None:
            log["input"] = input_
        if output is not None:
            log["output"] = output

        tokens = {
            key: int(usage[key])
            for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            if number(usage.get(key)) is not None
        }
        if tokens:
            if "total_tokens" not in tokens:
                tokens["total_tokens"] = tokens.get("prompt_tokens", 0) + tokens.get("completion_tokens", 0)
            log["usage"] = tokens
        cost = number(metrics.get("estimated_cost"))
        if cost is not None:
            log["cost"] = float(cost)

        start, end = parse_time(span.get("start_time")), end_of(span)
        latency_ms = number(metrics.get("latency_ms"))
        if latency_ms is None and start and end:
            latency_ms = (end - start).total_seconds() * 1000
        if latency_ms is not None:
            log["latency"] = latency_ms / 1000
        ttft = number(metrics.get("time_to_first_token_ms"))
        if ttft is not None:
            log["time_to_first_token"] = ttft / 1000
        tps = number(metrics.get("tokens_per_second"))
        if tps is not None:
            log["tokens_per_second"] = float(tps)
        if start:
            log["start_time"] = iso(start)
        if end or start:
            log["timestamp"] = iso(end or start)

        if span.get("user_id"):
            log["customer_identifier"] = str(span["user_id"])
        if span.get("session_id"):
            log["thread_identifier"] = str(span["session_id"])

        parameters = as_dict(request.get("parameters"))
        for key in PARAMETERS:
            if parameters.get(key) is not None:
                log[key] = parameters[key]

        metadata = {k: v for k, v in as_dict(span.get("metadata")).items() if k != "tags" and v is not None}
        metadata.update(tags_of(span))
        for key, value in (
            ("provider", span.get("provider")),
            ("kind", span.get("kind")),
            ("finish_reason", response.get("finish_reason")),
            ("time_per_output_token_ms", metrics.get("time_per_output_token_ms")),
        ):
            if value is not None:
                metadata[key] = value
        extra = {k: v for k, v in parameters.items() if k not in PARAMETERS}
        if extra:
            metadata["parameters"] = extra
        if span.get("attributes"):
            metadata["attributes"] = span["attributes"]
        if metadata:
            log["metadata"] = metadata

        error = error_text(span)
        if error is not None:
            log["status_code"] = 500
            log["error_message"] = error
        else:
            log["status_code"] = 200
        return log

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        by_id = {span["id"]: span for span in spans if span.get("id")}
        logs = [self.log(span, by_id) for span in spans]
        headers = {
            "content-type": "application/json",
            "authorization": f"Bearer {destination.secrets.get('api_key') or ''}",
            "user-agent": "untrace-keywordsai/1",
        }
        url = f"{self.endpoint(destination)}/request-logs/batch/create"
        bodies = split_bodies(
            logs,
            lambda part: orjson.dumps({"logs": part}, option=orjson.OPT_NON_STR_KEYS, default=str),
            max_items=self.max_batch_spans,
            max_bytes=self.max_request_bytes,
        )
        return [HttpRequest("POST", url, dict(headers), body, len(part)) for body, part in bodies]

    def classify(self, response: httpx.Response) -> Outcome:
        outcome = super().classify(response)
        if not outcome.ok:
            return outcome
        return Outcome(
            ok=True, status=outcome.status, body=outcome.body, item_errors=self._item_errors(response)
        )

    def _item_errors(self, response: httpx.Response) -> list[dict[str, Any]]:
        """Per-item errors of a 2xx answer: a list (or `results`/`logs`/`errors` list) whose
        entries carry `error`/`errors`, matched to the logs sent by `index` or position."""
        try:
            answer = response.json()
            sent = orjson.loads(response.request.content).get("logs") or []
        except (ValueError, RuntimeError, AttributeError, httpx.HTTPError):
            return []
        items = answer
        if isinstance(answer, dict):
            items = next(
                (answer[k] for k in ("results", "logs", "errors") if isinstance(answer.get(k), list)), []
            )
        if not isinstance(items, list):
            return []
        errors = []
        for position, item in enumerate(items):
            if not isinstance(item, dict) or not (item.get("error") or item.get("errors")):
                continue
            index = item.get("index", position)
            span_id = (
                sent[index].get("span_unique_id") if isinstance(index, int) and index < len(sent) else None
            )
            message = item.get("error") or item.get("errors")
            errors.append(
                {"span_id": span_id, "status": item.get("status", 400), "message": str(message)[:500]}
            )
        return errors
