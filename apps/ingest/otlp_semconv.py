"""Map one OTLP span (already decoded from protobuf or JSON) to a canonical span dict.

Covers the OpenTelemetry GenAI semantic conventions, old (``gen_ai.system``,
``gen_ai.prompt.N.*``, ``gen_ai.completion.N.*``, ``gen_ai.usage.prompt_tokens``)
and current (``gen_ai.provider.name``, ``gen_ai.input.messages``, ...), the
OpenInference conventions (``llm.*``, ``input.value``, ``openinference.span.kind``)
and OpenLLMetry's ``traceloop.*`` span kinds and association properties.

An attribute that was mapped is removed; everything else is kept under the
span's ``attributes`` (resource attributes prefixed with ``resource.``), so no
information is lost. When two conventions carry different values for one field,
the first wins and the other stays in ``attributes``.
"""

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_OK, _STATUS_ERROR = 1, 2
_SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}

_OPENINFERENCE_KINDS = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "CHAIN": "chain",
    "AGENT": "agent",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
}
_GENAI_OPERATIONS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}
_TRACELOOP_KINDS = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
_LLM_REQUEST_TYPES = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "span"}
_SIGNAL_PREFIXES = ("gen_ai.", "llm.")

_PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
_SESSION = ("session.id", "gen_ai.conversation.id", "traceloop.association.properties.session_id")
_USER = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
_ENVIRONMENT = ("deployment.environment.name", "deployment.environment")
_VERSION = ("service.version",)
_USAGE = (
    ("prompt_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")),
    (
        "completion_tokens",
        ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"),
    ),
    ("total_tokens", ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")),
)
_USAGE_NAMES = frozenset(
    ("prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens")
)


@dataclass(slots=True)
class OtlpEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class OtlpSpan:
    """The fields of an OTLP span that matter here; ids are lowercase hex."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    events: list[OtlpEvent] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    trace_state: str = ""


@dataclass(frozen=True, slots=True)
class Origin:
    """What the spans of one resource and instrumentation scope share."""

    attributes: dict[str, Any]  # resource attributes (prefixed) and scope name/version
    environment: str | None
    version: str | None


def make_origin(resource: dict[str, Any], scope_name: str = "", scope_version: str = "") -> Origin:
    resource = dict(resource)
    environment = _take(resource, _ENVIRONMENT, _as_str)
    version = _take(resource, _VERSION, _as_str)
    attributes = {f"resource.{key}": value for key, value in resource.items()}
    if scope_name:
        attributes["otel.scope.name"] = scope_name
    if scope_version:
        attributes["otel.scope.version"] = scope_version
    return Origin(attributes, environment, version)


def bytes_value(value: bytes) -> str:
    """OTLP bytes attribute values are kept as base64 text, as in OTLP/JSON."""
    return base64.b64encode(value).decode("ascii")


def nanos_to_datetime(nanos: int) -> datetime | None:
    """UTC datetime (microsecond precision) of a unix-nanosecond timestamp; 0 means unset."""
    if not nanos:
        return None
    try:
        return _EPOCH + timedelta(microseconds=nanos // 1000)
    except OverflowError:
        raise ValueError(f"timestamp {nanos} is out of range") from None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _as_count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _take(attrs: dict[str, Any], keys: Iterable[str], convert: Callable[[Any], Any]) -> Any:
    """First usable value among ``keys``; it and equal duplicates are removed from ``attrs``."""
    found = None
    for key in keys:
        if key not in attrs:
            continue
        value = convert(attrs[key])
        if value is None:
            continue
        if found is None:
            found = value
        if value == found:
            del attrs[key]
    return found


def _parse_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            return None
    return value


class _Branch(dict):
    """An inner node built by ``_unflatten`` (as opposed to a dict attribute value)."""


def _unflatten(flat: dict[str, Any]) -> Any:
    """``{"0.role": r, "0.content": c}`` -> ``[{"role": r, "content": c}]``; None on a conflict."""
    root = _Branch()
    for path, value in flat.items():
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            child = node.setdefault(part, _Branch())
            if type(child) is not _Branch:
                return None
            node = child
        if leaf in node:
            return None
        node[leaf] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if type(node) is not _Branch:
        return node
    children = {key: _listify(value) for key, value in node.items()}
    if children and all(key.isascii() and key.isdigit() for key in children):
        return [children[key] for key in sorted(children, key=int)]
    return children


def _indexed_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    """Messages spread over ``<prefix>N.<field>`` attributes; they are removed when mapped."""
    flat = {key[len(prefix) :]: value for key, value in attrs.items() if key.startswith(prefix)}
    if not flat:
        return None
    messages = _unflatten(flat)
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None
    for key in flat:
        del attrs[prefix + key]
    return messages


def _openinference_message(item: dict[str, Any]) -> dict[str, Any]:
    message = item["message"] if set(item) == {"message"} and isinstance(item["message"], dict) else item
    message = dict(message)
    contents = message.pop("contents", None)
    if isinstance(contents, list):
        parts = [
            c["message_content"] if isinstance(c, dict) and "message_content" in c else c for c in contents
        ]
        single_text = (
            len(parts) == 1
            and isinstance(parts[0], dict)
            and parts[0].get("type") == "text"
            and set(parts[0]) <= {"type", "text"}
        )
        if single_text and message.get("content") is None:
            message["content"] = parts[0].get("text")
        else:
            message["contents"] = parts
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        message["tool_calls"] = [
            call["tool_call"] if isinstance(call, dict) and set(call) == {"tool_call"} else call
            for call in tool_calls
        ]
    return message


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("content"), str)
        and set(part) <= {"type", "content"}
    )


def _flatten_parts(parts: list[Any], message: dict[str, Any]) -> bool:
    """Text parts become ``content``, other parts stay in ``parts``; True if lossy."""
    texts = [part["content"] for part in parts if _is_text_part(part)]
    others = [part for part in parts if not _is_text_part(part)]
    if texts:
        message["content"] = "\n".join(texts)
    if others:
        message["parts"] = others
    return len(texts) > 1


def _genai_messages(value: Any) -> tuple[list[dict[str, Any]] | None, bool]:
    """Current GenAI ``gen_ai.{input,output}.messages`` (JSON text or structured value)."""
    value = _parse_json(value)
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        return None, False
    messages, lossy = [], False
    for item in value:
        message = {key: val for key, val in item.items() if key != "parts"}
        parts = item.get("parts")
        if isinstance(parts, list):
            lossy = _flatten_parts(parts, message) or lossy
        elif parts is not None:
            message["parts"] = parts
        messages.append(message)
    return messages, lossy


def _system_instructions(value: Any) -> tuple[dict[str, Any] | None, bool]:
    value = _parse_json(value)
    if isinstance(value, str):
        return {"role": "system", "content": value}, False
    if not isinstance(value, list):
        return None, False
    message: dict[str, Any] = {"role": "system"}
    return message, _flatten_parts(value, message)


def _input_messages(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    messages, lossy = _genai_messages(attrs.get("gen_ai.input.messages"))
    if messages is not None and not lossy:
        del attrs["gen_ai.input.messages"]
    system, system_lossy = _system_instructions(attrs.get("gen_ai.system_instructions"))
    if system is not None:
        messages = [system, *(messages or [])]
        if not system_lossy:
            del attrs["gen_ai.system_instructions"]
    if messages is not None:
        return messages
    messages = _indexed_messages(attrs, "gen_ai.prompt.")
    if messages is not None:
        return messages
    messages = _indexed_messages(attrs, "llm.input_messages.")
    return None if messages is None else [_openinference_message(m) for m in messages]


def _output_messages(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    messages, lossy = _genai_messages(attrs.get("gen_ai.output.messages"))
    if messages is not None:
        if not lossy:
            del attrs["gen_ai.output.messages"]
        return messages
    messages = _indexed_messages(attrs, "gen_ai.completion.")
    if messages is not None:
        return messages
    messages = _indexed_messages(attrs, "llm.output_messages.")
    return None if messages is None else [_openinference_message(m) for m in messages]


def _kind(attrs: dict[str, Any]) -> str:
    openinference = attrs.get("openinference.span.kind")
    if isinstance(openinference, str):
        kind = _OPENINFERENCE_KINDS.get(openinference.upper())
        if kind is None:
            return "span"
        del attrs["openinference.span.kind"]
        return kind
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str):
        return _GENAI_OPERATIONS.get(operation, "llm")
    for key, table in (("traceloop.span.kind", _TRACELOOP_KINDS), ("llm.request.type", _LLM_REQUEST_TYPES)):
        value = attrs.get(key)
        if isinstance(value, str) and value in table:
            return table[value]
    return "llm" if any(key.startswith(_SIGNAL_PREFIXES) for key in attrs) else "span"


def _parameters(attrs: dict[str, Any]) -> dict[str, Any]:
    parameters = {
        key[len("gen_ai.request.") :]: attrs.pop(key) for key in _prefixed(attrs, "gen_ai.request.")
    }
    invocation = _parse_json(attrs.get("llm.invocation_parameters"))
    if isinstance(invocation, dict):
        del attrs["llm.invocation_parameters"]
        for key, value in invocation.items():
            parameters.setdefault(key, value)
    return parameters


def _prefixed(attrs: dict[str, Any], prefix: str) -> list[str]:
    return [key for key in attrs if key.startswith(prefix)]


def _usage(attrs: dict[str, Any]) -> dict[str, Any]:
    usage = {}
    for name, keys in _USAGE:
        value = _take(attrs, keys, _as_count)
        if value is not None:
            usage[name] = value
    for key in _prefixed(attrs, "gen_ai.usage."):
        name = key[len("gen_ai.usage.") :]
        if name not in _USAGE_NAMES:
            usage[name] = attrs.pop(key)
    return usage


def _finish_reason(attrs: dict[str, Any]) -> str | None:
    reasons = attrs.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, str):
        reasons = [reasons]
    if not isinstance(reasons, list) or not reasons or not isinstance(reasons[0], str):
        return None
    if len(reasons) == 1:
        del attrs["gen_ai.response.finish_reasons"]
    return reasons[0]


def _set_output(response: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """``content`` (and ``finish_reason``) from the first message; ``messages`` unless redundant."""
    first = messages[0] if messages else {}
    if isinstance(first.get("content"), str):
        response["content"] = first["content"]
    if isinstance(first.get("finish_reason"), str):
        response.setdefault("finish_reason", first["finish_reason"])
    redundant = (
        len(messages) == 1
        and "content" in response
        and set(first) <= {"role", "content", "finish_reason"}
        and first.get("role", "assistant") == "assistant"
        and first.get("finish_reason", response.get("finish_reason")) == response.get("finish_reason")
    )
    if not redundant:
        response["messages"] = messages


def _error(span: OtlpSpan, events: list[OtlpEvent]) -> dict[str, Any] | None:
    if span.status_code != _STATUS_ERROR:
        return None
    exception: dict[str, Any] = {}
    for index in range(len(events) - 1, -1, -1):
        if events[index].name == "exception":
            exception = dict(events.pop(index).attributes)
            break
    error: dict[str, Any] = {"type": str(exception.pop("exception.type", None) or "error")}
    message = span.status_message or exception.pop("exception.message", None) or ""
    error["message"] = str(message)
    stack = exception.pop("exception.stacktrace", None)
    if stack is not None:
        error["stack"] = str(stack)
    error.update(exception)  # e.g. exception.escaped, or exception.message when it differs
    return error


def _event(event: OtlpEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"name": event.name}
    when = nanos_to_datetime(event.time_unix_nano)
    if when is not None:
        out["time"] = when.isoformat().replace("+00:00", "Z")
    if event.attributes:
        out["attributes"] = event.attributes
    return out


def to_canonical(span: OtlpSpan, origin: Origin) -> dict[str, Any]:
    """The canonical span dict of an OTLP span, ready for ``decode_span``."""
    attrs = dict(span.attributes)
    out: dict[str, Any] = {
        "id": span.span_id,
        "trace_id": span.trace_id or None,
        "parent_id": span.parent_span_id if span.parent_span_id.strip("0") else None,
        "name": span.name or None,
        "kind": _kind(attrs),
        "start_time": nanos_to_datetime(span.start_time_unix_nano),
        "end_time": nanos_to_datetime(span.end_time_unix_nano),
        "provider": _take(attrs, _PROVIDER, _as_str),
        "model": _take(attrs, _MODEL, _as_str),
        "session_id": _take(attrs, _SESSION, _as_str),
        "user_id": _take(attrs, _USER, _as_str),
    }

    request: dict[str, Any] = {}
    messages = _input_messages(attrs)
    if messages is not None:
        request["messages"] = messages
    prompt = _take(attrs, ("gen_ai.prompt",), _as_str)
    if prompt is None and messages is None:
        prompt = _take(attrs, ("input.value",), _as_str)
    if prompt is not None:
        request["prompt"] = prompt
    parameters = _parameters(attrs)
    if parameters:
        request["parameters"] = parameters

    response: dict[str, Any] = {}
    finish_reason = _finish_reason(attrs)
    if finish_reason is not None:
        response["finish_reason"] = finish_reason
    outputs = _output_messages(attrs)
    if outputs is not None:
        _set_output(response, outputs)
    if "content" not in response:
        content = _take(attrs, ("gen_ai.completion", "output.value"), _as_str)
        if content is not None:
            response["content"] = content
    usage = _usage(attrs)
    if usage:
        response["usage"] = usage

    metadata = {
        "environment": _take(attrs, _ENVIRONMENT, _as_str) or origin.environment,
        "version": _take(attrs, _VERSION, _as_str) or origin.version,
    }
    events = list(span.events)
    error = _error(span, events)

    attrs.update(origin.attributes)
    if span.kind in _SPAN_KINDS:
        attrs["otel.span_kind"] = _SPAN_KINDS[span.kind]
    if span.status_code == _STATUS_OK:
        attrs["otel.status_code"] = "OK"
    if span.status_message and error is None:
        attrs["otel.status_description"] = span.status_message
    if span.trace_state:
        attrs["otel.trace_state"] = span.trace_state
    if events:
        attrs["events"] = [_event(event) for event in events]
    if span.links:
        attrs["links"] = span.links

    for key, value in (
        ("request", request),
        ("response", response),
        ("metadata", {k: v for k, v in metadata.items() if v is not None}),
        ("error", error),
        ("attributes", attrs),
    ):
        if value:
            out[key] = value
    return {key: value for key, value in out.items() if value is not None}
