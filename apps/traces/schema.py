"""The canonical span: types, limits, validation and (de)serialisation.

Times are normalised to timezone-aware UTC ``datetime`` objects: the wire accepts
an RFC 3339 string (one without an offset is read as UTC) or epoch milliseconds
(int or float); ``span_to_dict`` writes RFC 3339 strings.

Unknown fields are never dropped. Unknown top-level keys of a span are merged
into its ``attributes`` map (on a clash the explicit ``attributes`` entry wins).
``metadata`` is an open object (``environment``, ``version`` and ``tags`` are
checked, any other key is kept). Unknown keys of ``request``, ``response``,
``response.usage``, ``metrics`` and ``error`` are kept in that object's ``extra``
map and written back inline by ``span_to_dict``.

JSON is decoded by typed msgspec decoders; a span with unknown keys inside
``request``, ``response``, ``metrics`` or ``error`` (or an invalid one) goes
through a general path that parses, splits and converts.
"""

import math
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "BatchResult",
    "BodyTooLarge",
    "Error",
    "InvalidBody",
    "InvalidJSON",
    "Kind",
    "Metrics",
    "Request",
    "Response",
    "SchemaError",
    "Span",
    "SpanLimits",
    "SpanValidationError",
    "TooManyItems",
    "Usage",
    "decode_batch",
    "decode_json",
    "decode_single",
    "decode_span",
    "span_to_dict",
    "span_to_json",
]

MiB = 1024 * 1024

Kind = Literal["llm", "embedding", "chain", "agent", "tool", "retrieval", "span"]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Amount = Annotated[float, msgspec.Meta(ge=0)]
Timestamp = datetime | float  # after decoding: always a UTC datetime


@dataclass(frozen=True, slots=True)
class SpanLimits:
    max_body_bytes: int = 10 * MiB
    max_items_per_batch: int = 1000
    max_string_length: int = MiB  # characters: content, messages, free-form values
    max_id_length: int = 1024  # characters: ids, name, provider, model, labels, keys
    max_depth: int = 32  # nesting of objects and arrays, the span object being level 1
    max_attributes: int = 256
    max_tags: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"SpanLimits.{f.name} must be a positive int")


_EXTRA = "__untrace_extra__"  # wire name of the `extra` maps, only ever set by this module


class _Object(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    extra: dict[str, Any] = msgspec.field(default_factory=dict, name=_EXTRA)


class Usage(_Object):
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    total_tokens: Count | None = None


class Request(_Object):
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    parameters: dict[str, Any] | None = None


class Response(_Object):
    content: str | None = None
    messages: list[dict[str, Any]] | None = None
    usage: Usage | None = None
    finish_reason: str | None = None


class Metrics(_Object):
    latency_ms: Amount | None = None
    time_to_first_token_ms: Amount | None = None
    time_per_output_token_ms: Amount | None = None
    tokens_per_second: Amount | None = None
    estimated_cost: Amount | None = None


class Error(_Object):
    type: str
    message: str
    stack: str | None = None


class Span(msgspec.Struct, kw_only=True):  # unknown top-level keys are collected by the decoders
    id: NonEmptyStr
    trace_id: NonEmptyStr | None = None  # after decoding: never None
    parent_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    kind: Kind = "llm"
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    provider: str | None = None
    model: str | None = None
    request: Request | None = None
    response: Response | None = None
    metadata: dict[str, Any] | None = None  # {environment?: str, version?: str, tags?: {str: str}, ...}
    metrics: Metrics | None = None
    error: Error | None = None
    attributes: dict[str, Any] = {}


def _known(cls: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(cls.__struct_fields__) - {"extra"}


_SPAN_FIELDS = _known(Span)
_NESTED = (
    ("request", _known(Request)),
    ("response", _known(Response)),
    ("metrics", _known(Metrics)),
    ("error", _known(Error)),
)
_NESTED_NAMES = frozenset(name for name, _ in _NESTED)
_USAGE_FIELDS = _known(Usage)


class SchemaError(Exception):
    """Base of every error raised by this module; ``message`` is meant for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpanValidationError(SchemaError):
    """``field_path`` is relative to the span (``""`` for the span itself)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(message)
        self.field_path = field_path

    def __str__(self) -> str:
        return f"{self.field_path}: {self.message}" if self.field_path else self.message


class InvalidJSON(SchemaError):
    """``position`` (0-based byte offset), ``line`` and ``column`` (1-based) are None when unknown."""

    def __init__(
        self, message: str, *, position: int | None = None, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.position, self.line, self.column = position, line, column


class InvalidBody(SchemaError):
    pass


class TooManyItems(SchemaError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"`traces` has {count} items; at most {limit} are allowed per request")
        self.count, self.limit = count, limit


class BodyTooLarge(SchemaError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.size, self.limit = size, limit


@dataclass(slots=True)
class BatchResult:
    spans: list[Span] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)  # position in `traces` of each accepted span
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"index", "message", "field"}


class _Batch(msgspec.Struct):
    traces: list[msgspec.Raw]


_any_decoder = msgspec.json.Decoder()
_batch_decoder = msgspec.json.Decoder(type=_Batch)
_span_decoder = msgspec.json.Decoder(type=Span)
_keys_decoder = msgspec.json.Decoder(type=dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()
_BYTE_POSITION = re.compile(r"\s*\(byte (\d+)\)$")
_ERROR_PATH = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(.+)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `")


def _json_error(body: bytes, exc: msgspec.DecodeError) -> InvalidJSON:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):  # untyped decoding: a number out of range
        message, path = _ERROR_PATH.match(text).groups()
        where = f" at `{path.removeprefix('.')}`" if path else ""
        return InvalidJSON(f"invalid JSON: {message.lower()}{where}")
    match = _BYTE_POSITION.search(text)
    if match:
        position = int(match.group(1))
        text = text[: match.start()]
    else:
        position = len(body)
    text = text.removeprefix("JSON is malformed: ")
    line = body.count(b"\n", 0, position) + 1
    column = position - (body.rfind(b"\n", 0, position) + 1) + 1
    return InvalidJSON(
        f"invalid JSON at line {line}, column {column} (byte {position}): {text}",
        position=position,
        line=line,
        column=column,
    )


def _too_deep() -> InvalidJSON:
    return InvalidJSON("invalid JSON: nesting is too deep")


def decode_json(body: bytes) -> Any:
    """Parse a JSON document; raise ``InvalidJSON`` with the error position."""
    try:
        return _any_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise _json_error(body, exc) from None
    except RecursionError:
        raise _too_deep() from None


def _check_size(body: bytes, limits: SpanLimits) -> None:
    if len(body) > limits.max_body_bytes:
        raise BodyTooLarge(len(body), limits.max_body_bytes)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _from_msgspec(exc: msgspec.ValidationError) -> SpanValidationError:
    message, path = _ERROR_PATH.match(str(exc)).groups()
    path = (path or "").removeprefix(".")
    missing = _MISSING.match(message)
    if missing:
        path = _key_path(path, missing.group(1))
    return SpanValidationError(path, message)


def _key_path(prefix: str, key: str | int) -> str:
    if type(key) is int:
        return f"{prefix}[{key}]"
    key = key if len(key) <= 64 else key[:64] + "..."
    return f"{prefix}.{key}" if prefix else key


def _split(obj: dict[str, Any], known: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    known_part: dict[str, Any] = {}
    unknown_part: dict[str, Any] = {}
    for key, value in obj.items():
        (known_part if key in known else unknown_part)[key] = value
    return known_part, unknown_part


def _with_extra(obj: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """``obj``, or a copy of it whose unknown keys are moved into the extra map."""
    if known.issuperset(obj):
        return obj
    out, unknown = _split(obj, known)
    out[_EXTRA] = unknown
    return out


def _prepare(item: Any) -> dict[str, Any]:
    """Move unknown keys where ``Span`` expects them, without mutating ``item``."""
    if type(item) is not dict:
        raise SpanValidationError("", f"Expected `object`, got `{_type_name(item)}`")
    out = item
    if not _SPAN_FIELDS.issuperset(item):
        out, unknown = _split(item, _SPAN_FIELDS)
        explicit = out.get("attributes")
        if explicit is not None and type(explicit) is not dict:
            raise SpanValidationError("attributes", f"Expected `object`, got `{_type_name(explicit)}`")
        out["attributes"] = {**unknown, **explicit} if explicit else unknown
    for name, known in _NESTED:
        sub = out.get(name)
        if type(sub) is not dict:
            continue
        prepared = _with_extra(sub, known)
        usage = prepared.get("usage") if name == "response" else None
        if type(usage) is dict and not _USAGE_FIELDS.issuperset(usage):
            prepared = {**prepared, "usage": _with_extra(usage, _USAGE_FIELDS)}
        if prepared is not sub:
            if out is item:
                out = dict(item)
            out[name] = prepared
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: Timestamp | None, path: str) -> datetime | None:
    try:
        if value is None or type(value) is datetime and value.tzinfo is UTC:
            return value
        if type(value) is float:
            if not math.isfinite(value):
                raise OverflowError
            return _EPOCH + timedelta(milliseconds=value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except OverflowError:
        raise SpanValidationError(path, "timestamp out of range") from None


_Path = str | tuple[Any, str | int]


def _render(path: _Path) -> str:
    if type(path) is str:
        return path
    parent, key = path
    return _key_path(_render(parent), key)


def _walk(value: dict[str, Any] | list[Any], depth: int, path: _Path, limits: SpanLimits) -> None:
    """Check the string lengths and the nesting depth of a free-form object or array."""
    if depth > limits.max_depth:
        raise SpanValidationError(_render(path), f"nesting is deeper than {limits.max_depth} levels")
    max_length = limits.max_string_length
    for key, child in value.items() if type(value) is dict else enumerate(value):
        kind = type(child)
        if kind is str:
            if len(child) > max_length:
                raise SpanValidationError(
                    _render((path, key)), f"string is longer than {max_length} characters"
                )
        elif kind is dict or kind is list:
            _walk(child, depth + 1, (path, key), limits)


def _too_long(path: str, limit: int) -> SpanValidationError:
    return SpanValidationError(path, f"string is longer than {limit} characters")


_SHORT_FIELDS = ("id", "trace_id", "parent_id", "session_id", "user_id", "name", "provider", "model")
_LONG_FIELDS = (
    ("request", "prompt"),
    ("response", "content"),
    ("error", "message"),
    ("error", "stack"),
)


def _check_short_fields(span: Span, limit: int) -> None:
    for name in _SHORT_FIELDS:
        value = getattr(span, name)
        if value is not None and len(value) > limit:
            raise _too_long(name, limit)
    for path, value in (
        ("response.finish_reason", span.response and span.response.finish_reason),
        ("error.type", span.error and span.error.type),
    ):
        if value and len(value) > limit:
            raise _too_long(path, limit)


def _check_metadata(metadata: dict[str, Any], limits: SpanLimits) -> None:
    limit = limits.max_id_length
    for key in ("environment", "version"):
        value = metadata.get(key)
        if value is not None and type(value) is not str:
            raise SpanValidationError(f"metadata.{key}", f"Expected `str | null`, got `{_type_name(value)}`")
        if value is not None and len(value) > limit:
            raise _too_long(f"metadata.{key}", limit)
    tags = metadata.get("tags")
    if tags is None:
        return
    if type(tags) is not dict:
        raise SpanValidationError("metadata.tags", f"Expected `object | null`, got `{_type_name(tags)}`")
    if len(tags) > limits.max_tags:
        raise SpanValidationError("metadata.tags", f"too many tags ({len(tags)} > {limits.max_tags})")
    for key, value in tags.items():
        if type(value) is not str:
            raise SpanValidationError(
                _key_path("metadata.tags", key), f"Expected `str`, got `{_type_name(value)}`"
            )
        if len(key) > limit or len(value) > limit:
            raise _too_long(_key_path("metadata.tags", key), limit)


def _check_free_form(span: Span, limits: SpanLimits) -> None:
    long = limits.max_string_length
    for parent, name in _LONG_FIELDS:
        obj = getattr(span, parent)
        value = getattr(obj, name) if obj is not None else None
        if value is not None and len(value) > long:
            raise _too_long(f"{parent}.{name}", long)
    if span.metadata:
        _walk(span.metadata, 2, "metadata", limits)
    if span.attributes:
        _walk(span.attributes, 2, "attributes", limits)
    request, response = span.request, span.response
    if request is not None:
        for name in ("messages", "parameters"):
            value = getattr(request, name)
            if value:
                _walk(value, 3, f"request.{name}", limits)
    if response is not None:
        if response.messages:
            _walk(response.messages, 3, "response.messages", limits)
        if response.usage is not None and response.usage.extra:
            _walk(response.usage.extra, 3, "response.usage", limits)
    for name in _NESTED_NAMES:
        obj = getattr(span, name)
        if obj is not None and obj.extra:
            _walk(obj.extra, 2, name, limits)


def _finish(span: Span, limits: SpanLimits, raw: bytes | None) -> Span:
    """Fill defaults, normalise times and enforce the limits msgspec cannot express."""
    if span.trace_id is None:
        span.trace_id = span.id
    if span.parent_id == "":
        span.parent_id = None
    _check_short_fields(span, limits.max_id_length)
    span.start_time = _utc(span.start_time, "start_time")
    span.end_time = _utc(span.end_time, "end_time")
    if span.start_time and span.end_time and span.end_time < span.start_time:
        raise SpanValidationError("end_time", "end_time is before start_time")
    if span.metadata:
        _check_metadata(span.metadata, limits)
    attributes = span.attributes
    if len(attributes) > limits.max_attributes:
        raise SpanValidationError(
            "attributes", f"too many attributes ({len(attributes)} > {limits.max_attributes})"
        )
    for key in attributes:
        if len(key) > limits.max_id_length:
            raise _too_long(_key_path("attributes", key), limits.max_id_length)
    # A string never has more characters than its JSON encoding has bytes, and the
    # nesting depth is at most the number of opening brackets: small, flat inputs
    # cannot break the remaining limits and need no walk.
    if (
        raw is None
        or len(raw) > limits.max_string_length
        or raw.count(b"{") + raw.count(b"[") > limits.max_depth
    ):
        _check_free_form(span, limits)
    return span


def _from_object(item: Any, limits: SpanLimits) -> Span:
    try:
        span = msgspec.convert(_prepare(item), Span)
    except msgspec.ValidationError as exc:
        raise _from_msgspec(exc) from None
    return _finish(span, limits, None)


def _parse(raw: bytes | msgspec.Raw, path: str = "") -> Any:
    try:
        return _any_decoder.decode(raw)
    except msgspec.ValidationError as exc:  # a number out of range; its path names no keys
        raise SpanValidationError(path, _ERROR_PATH.match(str(exc)).group(1)) from None
    except msgspec.DecodeError as exc:
        raise _json_error(bytes(raw), exc) from None
    except RecursionError:
        raise _too_deep() from None


def _not_utf8(body: bytes) -> InvalidJSON:
    """msgspec checks UTF-8 only when it builds a string; report it as the JSON error it is."""
    try:
        body.decode()
        position = len(body)
    except UnicodeDecodeError as exc:  # where in the whole body, not in the string msgspec saw
        position = exc.start
    line = body.count(b"\n", 0, position) + 1
    column = position - (body.rfind(b"\n", 0, position) + 1) + 1
    return InvalidJSON(
        f"invalid JSON at line {line}, column {column} (byte {position}): not valid UTF-8",
        position=position,
        line=line,
        column=column,
    )


def _from_json(raw: bytes | msgspec.Raw, limits: SpanLimits) -> Span:
    try:
        return _from_json_text(raw, limits)
    except UnicodeDecodeError:
        raise _not_utf8(bytes(raw)) from None


def _from_json_text(raw: bytes | msgspec.Raw, limits: SpanLimits) -> Span:
    """Typed decoding plus a scan of the top-level keys; other cases take the general path."""
    try:
        keys = _keys_decoder.decode(raw)
    except msgspec.ValidationError:  # not an object
        return _from_object(_parse(raw), limits)
    except msgspec.DecodeError as exc:
        raise _json_error(bytes(raw), exc) from None
    except RecursionError:
        raise _too_deep() from None
    try:
        span = _span_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if _UNKNOWN_FIELD.match(str(exc)):  # in a nested object
            return _from_object(_parse(raw), limits)
        raise _from_msgspec(exc) from None
    except RecursionError:
        raise _too_deep() from None
    if not _SPAN_FIELDS.issuperset(keys):
        unknown = {key: _parse(value, key) for key, value in keys.items() if key not in _SPAN_FIELDS}
        span.attributes = {**unknown, **span.attributes}
    return _finish(span, limits, raw if type(raw) is bytes else bytes(raw))


def decode_span(raw: bytes | dict[str, Any], *, limits: SpanLimits) -> Span:
    """Validate one span given as JSON bytes or as an already parsed dict."""
    if isinstance(raw, dict):
        return _from_object(raw, limits)
    return _from_json(bytes(raw), limits)


def decode_single(body: bytes, *, limits: SpanLimits) -> Span:
    """Decode the body of ``POST /v1/traces``: one span object."""
    _check_size(body, limits)
    return _from_json(body, limits)


def _item_field(index: int, path: str) -> str:
    prefix = f"traces[{index}]"
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def decode_batch(body: bytes, *, limits: SpanLimits) -> BatchResult:
    """Decode ``{"traces": [span, ...]}``; an invalid item is reported, never fatal."""
    _check_size(body, limits)
    try:
        items = _batch_decoder.decode(body).traces
    except UnicodeDecodeError:
        raise _not_utf8(body) from None
    except msgspec.ValidationError:
        raise InvalidBody("the body must be a JSON object with a `traces` array") from None
    except msgspec.DecodeError as exc:
        raise _json_error(body, exc) from None
    except RecursionError:
        raise _too_deep() from None
    if len(items) > limits.max_items_per_batch:
        raise TooManyItems(len(items), limits.max_items_per_batch)
    result = BatchResult()
    for index, item in enumerate(items):
        try:
            span = _from_json(item, limits)
        except SpanValidationError as exc:
            field_path = _item_field(index, exc.field_path)
            result.errors.append({"index": index, "message": exc.message, "field": field_path})
        except InvalidJSON as exc:
            result.errors.append({"index": index, "message": exc.message, "field": f"traces[{index}]"})
        else:
            result.spans.append(span)
            result.indexes.append(index)
    return result


def _inline(obj: dict[str, Any]) -> dict[str, Any]:
    extra = obj.pop(_EXTRA, None)
    if extra:
        for key, value in extra.items():
            obj.setdefault(key, value)
    return obj


def span_to_dict(span: Span) -> dict[str, Any]:
    """JSON-ready dict of a span: snake_case keys, None fields left out."""
    out: dict[str, Any] = {}
    for key, value in msgspec.to_builtins(span).items():
        if value is None or (key == "attributes" and not value):
            continue
        if key in _NESTED_NAMES:
            value = _inline(value)
            if key == "response" and "usage" in value:
                _inline(value["usage"])
        out[key] = value
    return out


def span_to_json(span: Span) -> bytes:
    return _encoder.encode(span_to_dict(span))
