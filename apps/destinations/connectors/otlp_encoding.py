"""Canonical spans as an OTLP `ExportTraceServiceRequest`, shared by the OpenTelemetry-based connectors.

OTLP/HTTP (opentelemetry-proto `docs/specification.md`) takes the request as `application/x-protobuf` or,
where the receiver allows it, OTLP/JSON: the proto3 JSON mapping with lowerCamelCase keys, enums as integers,
64-bit integers as decimal strings and, unlike plain proto3 JSON, trace and span ids as hex strings.

OTel ids are 16 bytes (trace) and 8 bytes (span). They are derived from the canonical ids the same way every
time, so a span sent again carries the same ids and receivers de-duplicate it: an id that already is 32
(or 16) hex characters (a UUID's dashes aside) is used as is, anything else is hashed.

The attributes come in three styles, chosen per platform:
- `genai`: the OpenTelemetry GenAI semantic conventions (gen_ai.*), plus their deprecated names
  (gen_ai.system, gen_ai.usage.prompt_tokens/completion_tokens) that older collectors and backends still read;
- `openinference`: Arize's OpenInference conventions (openinference.span.kind, llm.*, input/output.value),
  which Phoenix reads;
- `langfuse`: Langfuse's own langfuse.trace.* / langfuse.observation.* attributes (`_client/attributes.py` of
  the Langfuse SDK), which its OTLP endpoint reads first.
Every style keeps the span's own `attributes`, `user.id` and `session.id`. Errors become status ERROR with the
message and an `exception` event (exception.type/message/stacktrace), as the OTel exception conventions say.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from apps.destinations.connectors.base import HttpRequest, Outcome

GENAI = "genai"
OPENINFERENCE = "openinference"
LANGFUSE = "langfuse"

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

SCOPE_NAME = "untrace"
SCOPE_VERSION = "1"

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Canonical kind -> gen_ai.operation.name (kinds without an operation get none).
_GENAI_OPERATION = {
    "embedding": "embeddings",
    "retrieval": "retrieval",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "chain": "invoke_workflow",
}
_OPENINFERENCE_KIND = {
    "llm": "LLM",
    "embedding": "EMBEDDING",
    "chain": "CHAIN",
    "agent": "AGENT",
    "tool": "TOOL",
    "retrieval": "RETRIEVER",
    "span": "CHAIN",
}
_LANGFUSE_TYPE = {
    "llm": "generation",
    "embedding": "embedding",
    "chain": "chain",
    "agent": "agent",
    "tool": "tool",
    "retrieval": "retriever",
    "span": "span",
}
# Request parameters with a gen_ai.request.* name of their own.
_GENAI_PARAMETERS = {
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop": "stop_sequences",
    "stop_sequences": "stop_sequences",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "stream": "stream",
    "n": "choice.count",
}


# ---------------------------------------------------------------- ids and times


def _digest(value: str, size: int) -> bytes:
    raw = hashlib.sha256(value.encode()).digest()[:size]
    return raw if any(raw) else b"\x01" * size  # all-zero ids are invalid in OTLP


def trace_id(canonical: Any) -> bytes:
    """16 bytes: the canonical id itself when it is 32 hex characters (a UUID), else a hash of it."""
    text = str(canonical)
    compact = text.replace("-", "")
    if _HEX32.match(compact) and int(compact, 16):
        return bytes.fromhex(compact)
    return _digest(f"trace:{text}", 16)


def span_id(canonical: Any) -> bytes:
    """8 bytes: the canonical id itself when it is 16 hex characters, else a hash of it."""
    text = str(canonical)
    if _HEX16.match(text) and int(text, 16):
        return bytes.fromhex(text)
    return _digest(f"span:{text}", 8)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def unix_nanos(value: Any) -> int:
    """Nanoseconds since the epoch of an ISO-8601 time (0 when absent or unreadable)."""
    moment = parse_time(value)
    if moment is None:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the canonical times are UTC
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def span_times(span: dict[str, Any]) -> tuple[int, int]:
    """(start, end) in unix nanoseconds; a missing end is the start, a missing start the end or receipt."""
    start = unix_nanos(span.get("start_time")) or unix_nanos(span.get("end_time"))
    start = start or unix_nanos(span.get("received_at"))
    end = unix_nanos(span.get("end_time")) or start
    return start, max(start, end)


def completion_start(span: dict[str, Any]) -> str | None:
    """ISO-8601 time of the first token (start + time_to_first_token_ms)."""
    ttft = (span.get("metrics") or {}).get("time_to_first_token_ms")
    start = parse_time(span.get("start_time"))
    if start is None or not isinstance(ttft, int | float):
        return None
    return (start + timedelta(milliseconds=ttft)).isoformat()


# ---------------------------------------------------------------- values


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def any_value(value: Any) -> AnyValue:
    """A primitive or a homogeneous list of primitives as itself; anything else as a JSON string."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    homogeneous = isinstance(value, list | tuple) and value and len({type(v) for v in value}) == 1
    if homogeneous and isinstance(value[0], str | bool | int | float):
        result = AnyValue()
        result.array_value.values.extend(any_value(v) for v in value)
        return result
    return AnyValue(string_value=dumps(value))


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items() if v is not None]


# ---------------------------------------------------------------- canonical content


def usage_of(span: dict[str, Any]) -> dict[str, Any]:
    return ((span.get("response") or {}).get("usage")) or {}


def cost_of(span: dict[str, Any]) -> float | None:
    cost = (span.get("metrics") or {}).get("estimated_cost")
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


def input_messages(span: dict[str, Any]) -> list[dict[str, Any]]:
    request = span.get("request") or {}
    messages = request.get("messages")
    if isinstance(messages, list) and messages:
        return [m for m in messages if isinstance(m, dict)]
    prompt = request.get("prompt")
    if prompt is not None:
        return [{"role": "user", "content": prompt}]
    return []


def output_messages(span: dict[str, Any]) -> list[dict[str, Any]]:
    response = span.get("response") or {}
    messages = response.get("messages")
    if isinstance(messages, list) and messages:
        return [m for m in messages if isinstance(m, dict)]
    if response.get("content") is not None:
        return [{"role": "assistant", "content": response["content"]}]
    return []


def content_text(content: Any) -> str:
    """A message's content as text: strings as they are, text parts joined, anything else as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and "text" in p for p in content):
        return "".join(str(p["text"]) for p in content)
    return dumps(content)


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            function = call.get("function") or {}
            arguments = function.get("arguments", call.get("arguments"))
            calls.append(
                {"id": call.get("id"), "name": function.get("name", call.get("name")), "arguments": arguments}
            )
    return calls


def genai_message(message: dict[str, Any], finish_reason: Any = None) -> dict[str, Any]:
    """One message in the GenAI shape: {role, parts: [{type: text|tool_call|tool_call_response, ...}]}."""
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if message.get("role") == "tool" and message.get("tool_call_id"):
        parts.append({"type": "tool_call_response", "id": message["tool_call_id"], "result": content})
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and "text" in part:
                parts.append({"type": "text", "content": part["text"]})
            elif part is not None:
                parts.append({"type": "text", "content": content_text(part)})
    elif content is not None:
        parts.append({"type": "text", "content": content_text(content)})
    for call in _tool_calls(message):
        parts.append({"type": "tool_call", **{k: v for k, v in call.items() if v is not None}})
    result = {"role": message.get("role") or "user", "parts": parts}
    if finish_reason:
        result["finish_reason"] = finish_reason
    return result


def input_payload(span: dict[str, Any]) -> Any:
    """What went in: the messages, else the prompt, else the request itself."""
    request = span.get("request") or {}
    if request.get("messages"):
        return request["messages"]
    if request.get("prompt") is not None:
        return request["prompt"]
    return request or None


def output_payload(span: dict[str, Any]) -> Any:
    response = span.get("response") or {}
    if response.get("messages"):
        return response["messages"]
    if response.get("content") is not None:
        return response["content"]
    return None


def tags_of(span: dict[str, Any]) -> list[str]:
    tags = (span.get("metadata") or {}).get("tags") or {}
    if isinstance(tags, dict):
        return [f"{k}:{v}" if v not in (None, "") else str(k) for k, v in tags.items()]
    if isinstance(tags, list):
        return [str(t) for t in tags]
    return []


def metadata_of(span: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (span.get("metadata") or {}).items() if k != "tags"}


# ---------------------------------------------------------------- attribute styles


def genai_attributes(span: dict[str, Any]) -> dict[str, Any]:
    kind = span.get("kind") or "span"
    request = span.get("request") or {}
    response = span.get("response") or {}
    usage = usage_of(span)
    attrs: dict[str, Any] = {}
    operation = _GENAI_OPERATION.get(kind)
    if kind == "llm":
        operation = (
            "text_completion" if request.get("prompt") is not None and not request.get("messages") else "chat"
        )
    attrs["gen_ai.operation.name"] = operation
    if span.get("provider"):
        attrs["gen_ai.provider.name"] = span["provider"]
        attrs["gen_ai.system"] = span["provider"]
    if span.get("model"):
        attrs["gen_ai.request.model"] = span["model"]
        attrs["gen_ai.response.model"] = response.get("model") or span["model"]
    for name, value in (request.get("parameters") or {}).items():
        if name in _GENAI_PARAMETERS and value is not None:
            if name == "stop" and isinstance(value, str):
                value = [value]
            attrs[f"gen_ai.request.{_GENAI_PARAMETERS[name]}"] = value
    if response.get("id"):
        attrs["gen_ai.response.id"] = response["id"]
    if usage.get("prompt_tokens") is not None:
        attrs["gen_ai.usage.input_tokens"] = usage["prompt_tokens"]
        attrs["gen_ai.usage.prompt_tokens"] = usage["prompt_tokens"]
    if usage.get("completion_tokens") is not None:
        attrs["gen_ai.usage.output_tokens"] = usage["completion_tokens"]
        attrs["gen_ai.usage.completion_tokens"] = usage["completion_tokens"]
    if cost_of(span) is not None:
        attrs["gen_ai.usage.cost"] = cost_of(span)  # not standard; Langfuse and others read it
    finish = response.get("finish_reason")
    if finish:
        attrs["gen_ai.response.finish_reasons"] = [finish] if isinstance(finish, str) else list(finish)
    messages = input_messages(span)
    if messages:
        attrs["gen_ai.input.messages"] = dumps([genai_message(m) for m in messages])
    outputs = output_messages(span)
    if outputs:
        reason = finish if isinstance(finish, str) else None
        attrs["gen_ai.output.messages"] = dumps([genai_message(m, reason) for m in outputs])
    ttft = (span.get("metrics") or {}).get("time_to_first_token_ms")
    if isinstance(ttft, int | float):
        attrs["gen_ai.response.time_to_first_chunk"] = ttft / 1000
    if span.get("session_id"):
        attrs["gen_ai.conversation.id"] = span["session_id"]
    if kind == "tool":
        attrs["gen_ai.tool.name"] = span.get("name")
    if kind == "agent":
        attrs["gen_ai.agent.name"] = span.get("name")
    error = span.get("error") or {}
    if error.get("type"):
        attrs["error.type"] = error["type"]
    metadata = metadata_of(span)
    if metadata:
        attrs["untrace.metadata"] = dumps(metadata)
    tags = (span.get("metadata") or {}).get("tags")
    for key, value in tags.items() if isinstance(tags, dict) else ():
        attrs[f"untrace.tags.{key}"] = value
    for key, value in (span.get("metrics") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[f"untrace.metrics.{key}"] = value
    return attrs


def openinference_attributes(span: dict[str, Any]) -> dict[str, Any]:
    kind = span.get("kind") or "span"
    request = span.get("request") or {}
    response = span.get("response") or {}
    usage = usage_of(span)
    attrs: dict[str, Any] = {"openinference.span.kind": _OPENINFERENCE_KIND.get(kind, "CHAIN")}
    if span.get("model"):
        attrs["llm.model_name"] = span["model"]
    if span.get("provider"):
        attrs["llm.provider"] = str(span["provider"]).lower()
        attrs["llm.system"] = str(span["provider"]).lower()
    if request.get("parameters"):
        attrs["llm.invocation_parameters"] = dumps(request["parameters"])
    for prefix, messages in (
        ("llm.input_messages", input_messages(span)),
        ("llm.output_messages", output_messages(span)),
    ):
        for i, message in enumerate(messages):
            attrs[f"{prefix}.{i}.message.role"] = message.get("role") or "user"
            if message.get("content") is not None:
                attrs[f"{prefix}.{i}.message.content"] = content_text(message["content"])
            if message.get("tool_call_id"):
                attrs[f"{prefix}.{i}.message.tool_call_id"] = message["tool_call_id"]
            for j, call in enumerate(_tool_calls(message)):
                base = f"{prefix}.{i}.message.tool_calls.{j}.tool_call"
                attrs[f"{base}.id"] = call.get("id")
                attrs[f"{base}.function.name"] = call.get("name")
                arguments = call.get("arguments")
                attrs[f"{base}.function.arguments"] = (
                    arguments if isinstance(arguments, str) else dumps(arguments)
                )
    for name, key in (
        ("prompt", "prompt_tokens"),
        ("completion", "completion_tokens"),
        ("total", "total_tokens"),
    ):
        if usage.get(key) is not None:
            attrs[f"llm.token_count.{name}"] = usage[key]
    if "total_tokens" not in usage and usage.get("prompt_tokens") is not None:
        attrs["llm.token_count.total"] = usage["prompt_tokens"] + (usage.get("completion_tokens") or 0)
    if cost_of(span) is not None:
        attrs["llm.cost.total"] = cost_of(span)
    if response.get("finish_reason"):
        attrs["llm.finish_reason"] = response["finish_reason"]
    for side, payload in (("input", input_payload(span)), ("output", output_payload(span))):
        if payload is None:
            continue
        if isinstance(payload, str):
            attrs[f"{side}.value"], attrs[f"{side}.mime_type"] = payload, "text/plain"
        else:
            attrs[f"{side}.value"], attrs[f"{side}.mime_type"] = dumps(payload), "application/json"
    metadata = metadata_of(span)
    if span.get("metrics"):
        metadata = {**metadata, "metrics": span["metrics"]}
    if metadata:
        attrs["metadata"] = dumps(metadata)
    if tags_of(span):
        attrs["tag.tags"] = tags_of(span)
    return attrs


def langfuse_attributes(span: dict[str, Any]) -> dict[str, Any]:
    """Langfuse's attributes; trace-level ones (name, input, output) on root spans, tags and ids on all."""
    kind = span.get("kind") or "span"
    request = span.get("request") or {}
    usage = usage_of(span)
    metadata = span.get("metadata") or {}
    attrs: dict[str, Any] = {"langfuse.observation.type": _LANGFUSE_TYPE.get(kind, "span")}
    if input_payload(span) is not None:
        attrs["langfuse.observation.input"] = dumps(input_payload(span))
    if output_payload(span) is not None:
        attrs["langfuse.observation.output"] = dumps(output_payload(span))
    if span.get("model"):
        attrs["langfuse.observation.model.name"] = span["model"]
    if request.get("parameters"):
        attrs["langfuse.observation.model.parameters"] = dumps(request["parameters"])
    details = {
        name: usage[key]
        for name, key in (
            ("input", "prompt_tokens"),
            ("output", "completion_tokens"),
            ("total", "total_tokens"),
        )
        if isinstance(usage.get(key), int)
    }
    if details:
        attrs["langfuse.observation.usage_details"] = dumps(details)
    if cost_of(span) is not None:
        attrs["langfuse.observation.cost_details"] = dumps({"total": cost_of(span)})
    attrs["langfuse.observation.completion_start_time"] = completion_start(span)
    if span.get("status") == "error" or span.get("error"):
        attrs["langfuse.observation.level"] = "ERROR"
        attrs["langfuse.observation.status_message"] = (span.get("error") or {}).get("message") or "error"
    observation_metadata = {
        **metadata_of(span),
        "provider": span.get("provider"),
        "metrics": span.get("metrics"),
    }
    for key, value in observation_metadata.items():
        if value is not None:
            attrs[f"langfuse.observation.metadata.{key}"] = (
                value if isinstance(value, str | int) else dumps(value)
            )
    if metadata.get("environment"):
        attrs["langfuse.environment"] = metadata["environment"]
    if metadata.get("version"):
        attrs["langfuse.version"] = metadata["version"]
    if tags_of(span):
        attrs["langfuse.trace.tags"] = tags_of(span)
    if not span.get("parent_id"):
        attrs["langfuse.trace.name"] = span.get("name")
        if input_payload(span) is not None:
            attrs["langfuse.trace.input"] = dumps(input_payload(span))
        if output_payload(span) is not None:
            attrs["langfuse.trace.output"] = dumps(output_payload(span))
    return attrs


_STYLES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    GENAI: genai_attributes,
    OPENINFERENCE: openinference_attributes,
    LANGFUSE: langfuse_attributes,
}


def span_attributes(span: dict[str, Any], styles: Iterable[str]) -> dict[str, Any]:
    """The span's own attributes, then each style's (later ones win on a clash), then user and session."""
    attrs: dict[str, Any] = dict(span.get("attributes") or {})
    for style in styles:
        attrs.update(_STYLES[style](span))
    if span.get("user_id"):
        attrs["user.id"] = span["user_id"]
    if span.get("session_id"):
        attrs["session.id"] = span["session_id"]
    return {k: v for k, v in attrs.items() if v is not None}


# ---------------------------------------------------------------- spans and requests


def canonical_trace_id(span: dict[str, Any]) -> Any:
    return span.get("trace_id") or span.get("id")


def encode_span(span: dict[str, Any], styles: Iterable[str]) -> Span:
    start, end = span_times(span)
    kind = span.get("kind") or "span"
    proto = Span(
        trace_id=trace_id(canonical_trace_id(span)),
        span_id=span_id(span.get("id")),
        name=str(span.get("name") or kind),
        kind=Span.SPAN_KIND_CLIENT if kind in ("llm", "embedding") else Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
    )
    if span.get("parent_id"):
        proto.parent_span_id = span_id(span["parent_id"])
    proto.attributes.extend(key_values(span_attributes(span, styles)))
    error = span.get("error") or {}
    if span.get("status") == "error" or error:
        message = str(error.get("message") or error.get("type") or "error")
        proto.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=message))
        event = proto.events.add(name="exception", time_unix_nano=end)
        event.attributes.extend(
            key_values(
                {
                    "exception.type": error.get("type"),
                    "exception.message": message,
                    "exception.stacktrace": error.get("stack"),
                }
            )
        )
    elif span.get("status") == "ok":
        proto.status.CopyFrom(Status(code=Status.STATUS_CODE_OK))
    return proto


def export_request(
    spans: list[dict[str, Any]], styles: Iterable[str], resource_attributes: dict[str, Any]
) -> ExportTraceServiceRequest:
    """One ResourceSpans (the project) with one ScopeSpans holding every span."""
    styles = tuple(styles)
    scope_spans = ScopeSpans(scope=InstrumentationScope(name=SCOPE_NAME, version=SCOPE_VERSION))
    scope_spans.spans.extend(encode_span(span, styles) for span in spans)
    resource = Resource(attributes=key_values(resource_attributes))
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope_spans])]
    )


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


def to_json_dict(message: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON form: proto3 JSON with integer enums and hex ids."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    _ids_to_hex(data)
    return data


def serialize(message: ExportTraceServiceRequest, content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps(to_json_dict(message), ensure_ascii=False, separators=(",", ":")).encode()
    return message.SerializeToString()


def encode_batches(
    spans: list[dict[str, Any]],
    *,
    styles: Iterable[str],
    resource_attributes: dict[str, Any],
    content_type: str,
    max_spans: int,
    max_bytes: int,
) -> list[tuple[bytes, list[dict[str, Any]]]]:
    """Bodies of at most `max_spans` spans and `max_bytes` bytes (a single larger span still goes alone)."""
    styles = tuple(styles)
    batches: list[tuple[bytes, list[dict[str, Any]]]] = []
    pending = [spans[i : i + max_spans] for i in range(0, len(spans), max_spans)]
    while pending:
        part = pending.pop(0)
        body = serialize(export_request(part, styles, resource_attributes), content_type)
        if len(body) > max_bytes and len(part) > 1:
            half = len(part) // 2
            pending[:0] = [part[:half], part[half:]]
            continue
        batches.append((body, part))
    return batches


def partial_success(body: bytes, content_type: str) -> tuple[int, str]:
    """(rejected spans, error message) of an ExportTraceServiceResponse; (0, "") when there is none."""
    if not body:
        return 0, ""
    try:
        if "json" in (content_type or ""):
            data = json.loads(body).get("partialSuccess") or {}
            return int(data.get("rejectedSpans") or 0), str(data.get("errorMessage") or "")
        response = ExportTraceServiceResponse()
        response.ParseFromString(body)
    except (DecodeError, ValueError, AttributeError, TypeError):
        return 0, ""  # an unreadable answer is not a partial success
    return response.partial_success.rejected_spans, response.partial_success.error_message


# ---------------------------------------------------------------- OTLP/HTTP connectors

# What the OTLP specification says to retry; every other 4xx and 5xx is final.
OTLP_RETRYABLE = frozenset({429, 502, 503, 504})


def traces_url(endpoint: str) -> str:
    """`{endpoint}/v1/traces`, unless the endpoint already is the traces URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def service_name(destination: Any) -> str:
    """The project's slug (or name), else "untrace"."""
    if getattr(destination, "project_id", None):
        project = destination.project
        return project.slug or project.name or "untrace"
    return "untrace"


class OtlpExport:
    """OTLP/HTTP export shared by the OpenTelemetry-based connectors.

    Mixed in before `Connector` (`class X(OtlpExport, Connector)`), so each connector stays a direct
    `Connector` subclass for the registry. A connector sets `styles` and overrides `traces_url`,
    `content_type`, `export_headers` and `resource_attributes` where its platform differs.
    """

    styles: tuple[str, ...] = (GENAI,)
    user_agent = "untrace-otlp/1"

    def traces_url(self, destination: Any) -> str:
        return traces_url(self.endpoint(destination))  # type: ignore[attr-defined]

    def content_type(self, destination: Any) -> str:
        return PROTOBUF

    def export_headers(self, destination: Any) -> dict[str, str]:
        return {}

    def resource_attributes(self, destination: Any) -> dict[str, Any]:
        return {"service.name": service_name(destination)}

    def build_requests(
        self, destination: Any, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        content_type = self.content_type(destination)
        headers = {
            "content-type": content_type,
            "user-agent": self.user_agent,
            **self.export_headers(destination),
        }
        url = self.traces_url(destination)
        batches = encode_batches(
            spans,
            styles=self.styles,
            resource_attributes=self.resource_attributes(destination),
            content_type=content_type,
            max_spans=self.max_batch_spans,  # type: ignore[attr-defined]
            max_bytes=self.max_request_bytes,  # type: ignore[attr-defined]
        )
        return [HttpRequest("POST", url, dict(headers), body, len(part)) for body, part in batches]

    def classify(self, response: httpx.Response) -> Outcome:
        """A 2xx with a `partial_success` naming rejected spans is delivered with `item_errors`: OTLP
        reports only how many spans were refused and why, not which ones."""
        outcome = super().classify(response)  # type: ignore[misc]
        if not outcome.ok:
            return outcome
        rejected, message = partial_success(response.content, response.headers.get("content-type", ""))
        if not rejected:
            return outcome
        error = {
            "span_id": None,
            "status": "rejected",
            "message": message or "rejected",
            "rejected_spans": rejected,
        }
        return replace(outcome, item_errors=[error], message=f"{rejected} spans rejected: {message}"[:500])
