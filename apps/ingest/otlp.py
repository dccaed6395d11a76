"""OTLP/HTTP trace export: request decoding (protobuf or JSON) and response encoding.

Each OTLP span is mapped to a canonical span (``otlp_semconv``) and validated by
``apps.traces.schema``; a span that fails is rejected and counted for the
``partial_success`` of the response. A request that cannot be decoded at all
raises ``OtlpDecodeError`` (HTTP 400), an unsupported media type or content
encoding ``UnsupportedMediaType`` (HTTP 415).

OTLP/JSON follows the OTLP encoding rules: lowerCamelCase keys (the proto field
names are accepted too), trace and span ids as hex strings, 64-bit integers as
strings or numbers, enums as integers.
"""

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from apps.ingest.otlp_semconv import Origin, OtlpEvent, OtlpSpan, bytes_value, make_origin, to_canonical
from apps.traces.schema import (
    BodyTooLarge,
    SchemaError,
    Span,
    SpanLimits,
    TooManyItems,
    decode_json,
    decode_span,
)

__all__ = [
    "OtlpDecodeError",
    "OtlpResult",
    "UnsupportedMediaType",
    "decode_otlp",
    "encode_otlp_response",
    "maybe_gunzip",
    "response_content_type",
]

PROTOBUF, JSON = "application/x-protobuf", "application/json"
_PROTOBUF_TYPES = frozenset((PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"))
_MAX_ERRORS_IN_MESSAGE = 5


class OtlpDecodeError(Exception):
    pass


class UnsupportedMediaType(OtlpDecodeError):
    pass


@dataclass(slots=True)
class OtlpResult:
    spans: list[Span] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one per rejected span

    @property
    def rejected(self) -> int:
        return len(self.errors)

    @property
    def error_message(self) -> str:
        if not self.errors:
            return ""
        shown = "; ".join(self.errors[:_MAX_ERRORS_IN_MESSAGE])
        more = len(self.errors) - _MAX_ERRORS_IN_MESSAGE
        return f"{self.rejected} span(s) rejected: {shown}" + (f"; and {more} more" if more > 0 else "")


def maybe_gunzip(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """Decompress a gzip (or zlib ``deflate``) body, refusing to inflate past ``max_bytes``."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaType(f"unsupported Content-Encoding {content_encoding!r}")
    out = bytearray()
    remaining = body
    try:
        while remaining:
            inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # gzip or zlib header
            out += inflater.decompress(remaining, max_bytes + 1 - len(out))
            if len(out) > max_bytes or inflater.unconsumed_tail:
                raise BodyTooLarge(len(out), max_bytes)
            if not inflater.eof:
                raise OtlpDecodeError(f"truncated {encoding} body")
            remaining = inflater.unused_data  # a further gzip member
    except zlib.error as exc:
        raise OtlpDecodeError(f"invalid {encoding} body: {exc}") from None
    return bytes(out)


def _media_type(content_type: str | None) -> str:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base in _PROTOBUF_TYPES:
        return PROTOBUF
    if base == JSON:
        return JSON
    raise UnsupportedMediaType(f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}")


def response_content_type(request_content_type: str | None) -> str:
    """Content type of the response to a request (protobuf unless the request was JSON)."""
    try:
        return _media_type(request_content_type)
    except UnsupportedMediaType:
        return PROTOBUF


def encode_otlp_response(*, rejected: int, message: str, content_type: str) -> bytes:
    """``ExportTraceServiceResponse``; ``partial_success`` is set only when there is something to say."""
    media_type = response_content_type(content_type)
    if media_type == JSON:
        if not rejected and not message:
            return b"{}"
        partial = {"rejectedSpans": str(rejected), "errorMessage": message}
        return msgspec.json.encode({"partialSuccess": partial})
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    return response.SerializeToString()


def decode_otlp(body: bytes, *, content_type: str, limits: SpanLimits) -> OtlpResult:
    """Decode an (already decompressed) OTLP/HTTP trace export request."""
    media_type = _media_type(content_type)
    if len(body) > limits.max_body_bytes:
        raise BodyTooLarge(len(body), limits.max_body_bytes)
    groups = _protobuf_groups(body) if media_type == PROTOBUF else _json_groups(body)
    total = sum(len(spans) for _, spans in groups)
    if total > limits.max_items_per_batch:
        raise TooManyItems(total, limits.max_items_per_batch)
    result = OtlpResult()
    position = 0
    for origin, spans in groups:
        for item in spans:
            try:
                otlp_span = item if isinstance(item, OtlpSpan) else _json_span(item)
                canonical = to_canonical(otlp_span, origin)
                result.spans.append(decode_span(canonical, limits=limits))
            except (_Malformed, SchemaError, ValueError, RecursionError) as exc:
                result.errors.append(_describe(position, item, exc))
            position += 1
    return result


def _describe(position: int, item: Any, exc: Exception) -> str:
    span_id = item.span_id if isinstance(item, OtlpSpan) else None
    if isinstance(item, dict) and isinstance(item.get("spanId"), str):
        span_id = item["spanId"]
    where = f"span {position}" + (f" ({span_id})" if span_id else "")
    if isinstance(exc, RecursionError):
        return f"{where}: attributes are nested too deeply"
    return f"{where}: {exc}"


# --- protobuf ---------------------------------------------------------------------------


def _protobuf_groups(body: bytes) -> list[tuple[Origin, list[Any]]]:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as exc:
        raise OtlpDecodeError(f"invalid OTLP protobuf body: {exc}") from None
    groups = []
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            origin = make_origin(resource, scope.name, scope.version)
            groups.append((origin, list(_pb_spans(scope_spans.spans))))
    return groups


def _pb_spans(spans: Any) -> Iterator[OtlpSpan]:
    for span in spans:
        yield OtlpSpan(
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            name=span.name,
            kind=span.kind,
            start_time_unix_nano=span.start_time_unix_nano,
            end_time_unix_nano=span.end_time_unix_nano,
            attributes=_pb_attributes(span.attributes),
            events=[
                OtlpEvent(event.name, event.time_unix_nano, _pb_attributes(event.attributes))
                for event in span.events
            ],
            links=[
                _link(
                    link.trace_id.hex(), link.span_id.hex(), link.trace_state, _pb_attributes(link.attributes)
                )
                for link in span.links
            ],
            status_code=span.status.code,
            status_message=span.status.message,
            trace_state=span.trace_state,
        )


def _pb_attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in key_values}


def _pb_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [_pb_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return bytes_value(value.bytes_value)
    return None


def _link(trace_id: str, span_id: str, trace_state: str, attributes: dict[str, Any]) -> dict[str, Any]:
    link: dict[str, Any] = {"trace_id": trace_id, "span_id": span_id}
    if trace_state:
        link["trace_state"] = trace_state
    if attributes:
        link["attributes"] = attributes
    return link


# --- JSON -------------------------------------------------------------------------------


class _Malformed(Exception):
    pass


_HEX = re.compile(r"[0-9a-fA-F]*")
_SPAN_KIND_NAMES = {
    f"SPAN_KIND_{name}": number
    for number, name in enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_VALUE_KEYS = {
    "stringValue": "string",
    "string_value": "string",
    "boolValue": "bool",
    "bool_value": "bool",
    "intValue": "int",
    "int_value": "int",
    "doubleValue": "double",
    "double_value": "double",
    "arrayValue": "array",
    "array_value": "array",
    "kvlistValue": "kvlist",
    "kvlist_value": "kvlist",
    "bytesValue": "bytes",
    "bytes_value": "bytes",
}
_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _get(obj: dict[str, Any], camel: str, snake: str | None = None) -> Any:
    value = obj.get(camel)
    if value is None and snake is not None:
        value = obj.get(snake)
    return value


def _list(obj: dict[str, Any], camel: str, snake: str | None = None) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"`{camel}` must be an array")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"`{what}` must be an object")
    return value


def _json_groups(body: bytes) -> list[tuple[Origin, list[Any]]]:
    try:
        document = decode_json(body)
    except SchemaError as exc:
        raise OtlpDecodeError(str(exc)) from None
    try:
        request = _object(document, "ExportTraceServiceRequest")
        groups = []
        for resource_spans in _list(request, "resourceSpans", "resource_spans"):
            resource_spans = _object(resource_spans, "resourceSpans[]")
            resource = _json_attributes(_object(resource_spans.get("resource"), "resource").get("attributes"))
            for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
                scope_spans = _object(scope_spans, "scopeSpans[]")
                scope = _object(scope_spans.get("scope"), "scope")
                name, version = scope.get("name") or "", scope.get("version") or ""
                if not isinstance(name, str) or not isinstance(version, str):
                    raise _Malformed("`scope.name` and `scope.version` must be strings")
                groups.append((make_origin(resource, name, version), _list(scope_spans, "spans")))
    except (_Malformed, RecursionError) as exc:
        raise OtlpDecodeError(f"invalid OTLP JSON body: {exc}") from None
    return groups


def _json_span(span: Any) -> OtlpSpan:
    span = _object(span, "span")
    status = _object(span.get("status"), "status")
    name = span.get("name") or ""
    if not isinstance(name, str):
        raise _Malformed("`name` must be a string")
    return OtlpSpan(
        trace_id=_hex_id(span, "traceId", "trace_id"),
        span_id=_hex_id(span, "spanId", "span_id"),
        parent_span_id=_hex_id(span, "parentSpanId", "parent_span_id"),
        name=name,
        kind=_enum(span.get("kind"), _SPAN_KIND_NAMES, "kind"),
        start_time_unix_nano=_int(
            _get(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"
        ),
        end_time_unix_nano=_int(_get(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
        attributes=_json_attributes(span.get("attributes")),
        events=[_json_event(event) for event in _list(span, "events")],
        links=[_json_link(link) for link in _list(span, "links")],
        status_code=_enum(status.get("code"), _STATUS_NAMES, "status.code"),
        status_message=_str(status.get("message"), "status.message"),
        trace_state=_str(_get(span, "traceState", "trace_state"), "traceState"),
    )


def _json_event(event: Any) -> OtlpEvent:
    event = _object(event, "events[]")
    return OtlpEvent(
        name=_str(event.get("name"), "events[].name"),
        time_unix_nano=_int(_get(event, "timeUnixNano", "time_unix_nano"), "events[].timeUnixNano"),
        attributes=_json_attributes(event.get("attributes")),
    )


def _json_link(link: Any) -> dict[str, Any]:
    link = _object(link, "links[]")
    return _link(
        _hex_id(link, "traceId", "trace_id"),
        _hex_id(link, "spanId", "span_id"),
        _str(_get(link, "traceState", "trace_state"), "links[].traceState"),
        _json_attributes(link.get("attributes")),
    )


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"`{what}` must be a string")
    return value


def _hex_id(obj: dict[str, Any], camel: str, snake: str) -> str:
    value = _str(_get(obj, camel, snake), camel)
    if len(value) % 2 or not _HEX.fullmatch(value):
        raise _Malformed(f"`{camel}` must be a hex string")
    return value.lower()


def _int(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _Malformed(f"`{what}` must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _Malformed(f"`{what}` must be an integer")


def _enum(value: Any, names: dict[str, int], what: str) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _int(value, what)


def _json_attributes(key_values: Any) -> dict[str, Any]:
    if key_values is None:
        return {}
    if not isinstance(key_values, list):
        raise _Malformed("`attributes` must be an array")
    out = {}
    for key_value in key_values:
        if not isinstance(key_value, dict) or not isinstance(key_value.get("key"), str):
            raise _Malformed("attributes must be objects with a string `key`")
        out[key_value["key"]] = _json_value(key_value.get("value"))
    return out


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Malformed("an attribute value must be an AnyValue object")
    for key, item in value.items():
        kind = _VALUE_KEYS.get(key)
        if kind is not None:
            return _any_value(kind, item)
    return None


def _any_value(kind: str, item: Any) -> Any:
    if kind == "string" and isinstance(item, str):
        return item
    if kind == "bool" and isinstance(item, bool):
        return item
    if kind == "int":
        return _int(item, "intValue")
    if kind == "double":
        if isinstance(item, int | float) and not isinstance(item, bool):
            return float(item)
        if isinstance(item, str) and item in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[item]
    if kind == "bytes" and isinstance(item, str):
        return item  # already base64, as OTLP/JSON encodes bytes
    if kind == "array":
        return [_json_value(element) for element in _list(_object(item, "arrayValue"), "values")]
    if kind == "kvlist":
        return _json_attributes(_object(item, "kvlistValue").get("values"))
    raise _Malformed(f"invalid {kind}Value")
