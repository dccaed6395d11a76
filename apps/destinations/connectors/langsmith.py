"""LangSmith: runs posted to `POST {api_url}/runs/batch` as `{"post": [run, ...], "patch": []}`,
authenticated with `x-api-key` (the same endpoint and body the `langsmith` SDK uses when
multipart ingest is off). Self-hosted installs take `api_url = https://<host>/api/v1`.

Each canonical span becomes one complete run (created with its end time and outputs, so
nothing is patched later):

- `id` is the span id when it is a UUID, else uuid5 of it; `parent_run_id` likewise.
- `trace_id` is the id of the trace's root run and `dotted_order` lists one segment per
  ancestor from the root to the run itself (`%Y%m%dT%H%M%S%fZ` of the start time followed by
  the run id, joined by "."). Batch ingest refuses runs without both.
  The ancestors are looked up in the same batch (a trace usually arrives whole). When a
  parent is not in the batch, that parent is taken as the trace root: the run's `trace_id`
  is the parent's derived id, and its segment is stamped with the earliest start time known
  below it (a parent starts no later than its children). A run whose missing parent was
  not in fact the root therefore lands in a trace of its own, rooted at that parent.
  Like the SDK, a child's segment time is never earlier than its parent's (clock skew
  between services would otherwise break the ordering), and the run's `start_time` is the
  segment time.
  A span without a start time uses its end or arrival time, and one without any time the
  time of sending (its id stays stable, so a re-send is still recognised).
- `run_type`: llm, chain, tool, retriever, embedding; agent and span become chain.
- `inputs` hold the request messages, prompt and parameters; `outputs` the response
  content, messages, finish reason and `usage_metadata` (input/output/total tokens and
  `total_cost`, the run's estimated cost).
- `extra.metadata` carries `ls_provider`, `ls_model_name`, `session_id` (a key LangSmith
  groups threads by; not verified in primary material), `user_id`, the canonical metadata
  and metrics; `extra.invocation_params` the request parameters. The time to first token
  becomes a `new_token` event, from which LangSmith derives the run's first token time.
- `tags` are `metadata.tags` as "key:value"; `error` is the error as one string.
- `session_name` is the destination's project.

Limits: the SDK splits batches at `batch_ingest_config.size_limit_bytes`, 20 MiB by default;
requests here stay at 10 MiB. Answers: 409 means the run already exists (a re-send) and
counts as delivered, as in the SDK; 408, 429 and 5xx are retried.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from apps.destinations.connectors._spans import (
    ancestors,
    as_dict,
    end_of,
    error_text,
    iso,
    metrics_of,
    number,
    split_bodies,
    stable_uuid,
    start_of,
    tag_list,
    usage_of,
)
from apps.destinations.connectors.base import Connector, Field, HttpRequest, Outcome, api_key
from apps.destinations.models import Destination

DEFAULT_API_URL = "https://api.smith.langchain.com"
RUN_TYPES = {
    "llm": "llm",
    "chain": "chain",
    "tool": "tool",
    "retrieval": "retriever",
    "retriever": "retriever",
    "embedding": "embedding",
    "agent": "chain",
    "span": "chain",
}


def dotted_segment(moment: datetime, run_id: Any) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ") + str(run_id)


class LangSmithConnector(Connector):
    type = "langsmith"
    label = "LangSmith"
    fields = (api_key(), Field("project", default="default", help="LangSmith project (session) name"))
    max_batch_spans = 1000
    max_request_bytes = 10 * 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        return (destination.config.get("api_url") or DEFAULT_API_URL).rstrip("/")

    # -- mapping ---------------------------------------------------------------------------------

    def _ordering(
        self, span: dict[str, Any], by_id: dict[str, dict[str, Any]], fallback: datetime
    ) -> tuple[str, str, datetime]:
        """(trace_id, dotted_order, start time used in the run) for the span."""
        chain, missing = ancestors(span, by_id)
        path = [*chain, span]
        starts = [start_of(s) for s in path]
        known = [s for s in starts if s is not None]
        earliest = min(known) if known else fallback
        segments: list[str] = []
        previous: datetime | None = None
        if missing is not None:
            previous = earliest
            segments.append(dotted_segment(earliest, stable_uuid(missing)))
            root_id = stable_uuid(missing)
        else:
            root_id = stable_uuid(path[0].get("id"))
        for node, start in zip(path, starts, strict=True):
            moment = start or previous or earliest
            if previous is not None and moment < previous:
                moment = previous
            segments.append(dotted_segment(moment, stable_uuid(node.get("id"))))
            previous = moment
        return str(root_id), ".".join(segments), previous or earliest

    def _usage(self, span: dict[str, Any]) -> dict[str, Any] | None:
        usage = usage_of(span)
        cost = number(metrics_of(span).get("estimated_cost"))
        prompt = number(usage.get("prompt_tokens"))
        completion = number(usage.get("completion_tokens"))
        total = number(usage.get("total_tokens"))
        if prompt is None and completion is None and total is None and cost is None:
            return None
        out: dict[str, Any] = {
            "input_tokens": int(prompt or 0),
            "output_tokens": int(completion or 0),
            "total_tokens": int(total if total is not None else (prompt or 0) + (completion or 0)),
        }
        if cost is not None:
            out["total_cost"] = float(cost)
        return out

    def run(
        self, span: dict[str, Any], by_id: dict[str, dict[str, Any]], project: str, now: datetime
    ) -> dict[str, Any]:
        request = as_dict(span.get("request"))
        response = as_dict(span.get("response"))
        metadata = as_dict(span.get("metadata"))
        metrics = metrics_of(span)
        trace_id, dotted_order, start = self._ordering(span, by_id, now)
        end = end_of(span)
        if end is not None and end < start:
            end = start

        inputs: dict[str, Any] = {}
        if request.get("messages") is not None:
            inputs["messages"] = request["messages"]
        if request.get("prompt") is not None:
            inputs["prompt"] = request["prompt"]
        if request.get("parameters"):
            inputs["parameters"] = request["parameters"]

        outputs: dict[str, Any] = {}
        for key in ("content", "messages", "finish_reason"):
            if response.get(key) is not None:
                outputs[key] = response[key]
        usage = self._usage(span)
        if usage is not None:
            outputs["usage_metadata"] = usage

        extra_metadata: dict[str, Any] = {
            key: value for key, value in metadata.items() if key != "tags" and value is not None
        }
        for key, value in (
            ("ls_provider", span.get("provider")),
            ("ls_model_name", span.get("model")),
            ("session_id", span.get("session_id")),
            ("user_id", span.get("user_id")),
            ("canonical_trace_id", span.get("trace_id")),
            ("canonical_span_id", span.get("id")),
        ):
            if value is not None:
                extra_metadata[key] = value
        if metrics:
            extra_metadata["metrics"] = metrics
        if span.get("attributes"):
            extra_metadata["attributes"] = span["attributes"]
        if usage is not None:
            extra_metadata["usage_metadata"] = usage
        extra: dict[str, Any] = {"metadata": extra_metadata}
        if request.get("parameters"):
            extra["invocation_params"] = request["parameters"]

        run: dict[str, Any] = {
            "id": str(stable_uuid(span.get("id"))),
            "trace_id": trace_id,
            "dotted_order": dotted_order,
            "name": span.get("name") or span.get("kind") or "span",
            "run_type": RUN_TYPES.get(span.get("kind") or "", "chain"),
            "start_time": iso(start),
            "inputs": inputs,
            "extra": extra,
            "session_name": project,
        }
        if span.get("parent_id"):
            run["parent_run_id"] = str(stable_uuid(span["parent_id"]))
        if end is not None:
            run["end_time"] = iso(end)
        if outputs or end is not None:
            run["outputs"] = outputs
        ttft = number(metrics.get("time_to_first_token_ms"))
        if ttft is not None:
            run["events"] = [{"name": "new_token", "time": iso(start + timedelta(milliseconds=ttft))}]
        tags = tag_list(span)
        if tags:
            run["tags"] = tags
        error = error_text(span)
        if error is not None:
            run["error"] = error
        return run

    # -- requests --------------------------------------------------------------------------------

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        by_id = {span["id"]: span for span in spans if span.get("id")}
        project = destination.config.get("project") or "default"
        now = datetime.now(UTC)
        runs = [self.run(span, by_id, project, now) for span in spans]
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "x-api-key": str(destination.secrets.get("api_key") or ""),
            "user-agent": "untrace-langsmith/1",
        }
        url = f"{self.endpoint(destination)}/runs/batch"
        bodies = split_bodies(
            runs,
            lambda part: orjson.dumps({"post": part, "patch": []}, option=orjson.OPT_NON_STR_KEYS),
            max_items=self.max_batch_spans,
            max_bytes=self.max_request_bytes,
        )
        return [HttpRequest("POST", url, dict(headers), body, len(part)) for body, part in bodies]

    def classify(self, response: httpx.Response) -> Outcome:
        if response.status_code == 409:  # the runs already exist: a re-send
            return Outcome(ok=True, status=409, body=response.text[:2000])
        return super().classify(response)
