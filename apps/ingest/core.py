"""Ingest endpoints as plain functions of (request) -> response, free of any web framework.

Two thin adapters call them: Django views (`views.py`, for WSGI and the test
client) and the ASGI fast path (`asgi.py`), which serves the same endpoints in
production without Django's middleware chain.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction

from apps.billing.services import quota_message
from apps.billing.usage import quota_exceeded, usage_record
from apps.budgets.spend import spend_increment
from apps.core.errors import error_body
from apps.core.metrics import INGEST_THROTTLED, SPANS_INGESTED, SPANS_REJECTED
from apps.core.ratelimit import Decision, ip_refusal, ip_take
from apps.delivery.backpressure import project_backlog
from apps.ingest import otlp
from apps.ingest.limits import span_limits
from apps.ingest.webhooks import WebhookError, message_record, webhook_verify
from apps.keys.auth import KeyAuthError, KeyPrincipal, authenticate_key, key_from_headers
from apps.keys.ratelimit import AUTH_FAILURES, auth_failure_take, key_refusal, key_take
from apps.traces.pricing_overrides import price_overrides_for
from apps.traces.schema import (
    BatchResult,
    BodyTooLarge,
    InvalidJSON,
    SchemaError,
    Span,
    SpanValidationError,
    TooManyItems,
    decode_batch,
    decode_single,
)
from apps.traces.store import StoreResult, spans_store

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
WEBHOOK_IP = "webhook_ip"
JSON = "application/json"


@dataclass(frozen=True)
class IngestRequest:
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    client_ip: str | None = None
    # Added to whatever the request is answered (the X-RateLimit-* of its key).
    response_headers: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass
class IngestResponse:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class IngestError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.response = IngestResponse(
            status, orjson.dumps(error_body(code, message, details)), headers=headers or {}
        )


def _json(status: int, body: Any) -> IngestResponse:
    return IngestResponse(status, orjson.dumps(body))


def _authenticate(request: IngestRequest) -> KeyPrincipal:
    raw_key = key_from_headers(request.headers)
    try:
        principal = authenticate_key(raw_key, client_ip=request.client_ip, scope="ingest")
    except KeyAuthError as exc:
        if exc.status == 401 and raw_key:
            _check_limit(request, auth_failure_take(request.client_ip), ip_refusal, AUTH_FAILURES)
        raise IngestError(exc.status, exc.code, exc.message) from exc
    _check_limit(request, key_take(principal), key_refusal)
    _check_backlog(principal.project_id)
    _check_quota(principal.organization_id)
    return principal


def _check_limit(request: IngestRequest, decision: Decision | None, refusal: Callable, *args: str) -> None:
    """Record the bucket's headers for the answer; 429 when it was empty."""
    if decision is None:
        return
    headers = decision.headers()
    headers.pop("Retry-After", None)
    request.response_headers.update(headers)
    if not decision.allowed:
        status, body, refused_headers = refusal(decision, *args)
        error = body["error"]
        raise IngestError(status, error["code"], error["message"], error["details"], refused_headers)


def _check_backlog(project_id: uuid.UUID) -> None:
    """429 while the project's backlog is over its limit (see apps.delivery.backpressure)."""
    backlog = project_backlog(project_id)
    if backlog is not None:
        INGEST_THROTTLED.inc()
        raise IngestError(
            429,
            "backlog_full",
            f"{backlog} spans of this project are waiting to be routed or delivered "
            f"(limit {settings.UNTRACE_PROJECT_BACKLOG_LIMIT}); retry later.",
            headers={"Retry-After": str(int(settings.UNTRACE_DELIVERY_SWEEP_SECONDS) + 5)},
        )


def _check_quota(organization_id: uuid.UUID) -> None:
    """429 while the organization is over the share of its plan's monthly traces at which
    its plan pauses ingest (the starter plan past 110 %; see apps.billing.usage)."""
    exceeded = quota_exceeded(organization_id)
    if exceeded is not None:
        INGEST_THROTTLED.inc()
        raise IngestError(
            429,
            "quota_exceeded",
            quota_message(exceeded),
            {
                "limit": "traces_per_month",
                "plan": exceeded.plan,
                "max": exceeded.limit,
                "used": exceeded.used,
                "upgrade": "POST /v1/billing/checkout",
            },
        )


def _require_json(request: IngestRequest) -> None:
    if request.content_type != JSON:
        raise IngestError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, not {request.content_type or 'missing'!r}.",
        )


def _body(request: IngestRequest) -> bytes:
    """The body, decompressed per Content-Encoding, within the size limit."""
    limit = span_limits().max_body_bytes
    if len(request.body) > limit:
        raise IngestError(413, "payload_too_large", f"the request body is larger than {limit} bytes")
    try:
        return otlp.maybe_gunzip(request.body, request.headers.get("content-encoding"), max_bytes=limit)
    except BodyTooLarge as exc:
        raise IngestError(413, "payload_too_large", exc.message) from exc
    except otlp.UnsupportedMediaType as exc:
        raise IngestError(415, "unsupported_media_type", str(exc)) from exc
    except otlp.OtlpDecodeError as exc:
        raise IngestError(400, "invalid_encoding", str(exc)) from exc


def _schema_error(exc: SchemaError) -> IngestError:
    if isinstance(exc, (BodyTooLarge, TooManyItems)):
        return IngestError(413, "payload_too_large", exc.message)
    if isinstance(exc, InvalidJSON):
        return IngestError(
            400,
            "invalid_json",
            exc.message,
            {"position": exc.position, "line": exc.line, "column": exc.column},
        )
    if isinstance(exc, SpanValidationError):
        message = f"{exc.field_path}: {exc.message}" if exc.field_path else exc.message
        return IngestError(400, "invalid_request", message, {"field": exc.field_path or None})
    return IngestError(400, "invalid_request", exc.message)


def _store(
    *,
    project_id: uuid.UUID,
    organization_id: uuid.UUID,
    spans: Sequence[Span],
    source: str,
    api_key_id: uuid.UUID | None = None,
) -> StoreResult:
    """Durable before acknowledged: 503 with Retry-After when PostgreSQL cannot take them."""
    try:
        result = spans_store(
            project_id=project_id,
            spans=spans,
            source=source,
            price_overrides=price_overrides_for(organization_id),
            api_key_id=api_key_id,
        )
    except (OperationalError, InterfaceError):
        raise  # an outage, not bad data: `_handled` answers 503
    except (DatabaseError, orjson.JSONEncodeError) as exc:  # a value validation let through, out of range
        logger.exception("spans refused by the store")
        raise IngestError(400, "invalid_request", "the store refused the spans") from exc
    SPANS_INGESTED.labels(source).inc(result.inserted)
    usage_record(organization_id, result.inserted, spend_increment(project_id, api_key_id, result.cost))
    return result


STORE_REFUSED = "the store refused this span: a value is out of range"


def _batch_response(
    result: BatchResult,
    *,
    project_id: uuid.UUID,
    organization_id: uuid.UUID,
    source: str,
    api_key_id: uuid.UUID | None = None,
) -> IngestResponse:
    """202 all accepted, 207 some rejected, 400 none."""
    if result.errors:
        SPANS_REJECTED.labels(source).inc(len(result.errors))
    if not result.spans:
        raise IngestError(
            400,
            "invalid_request",
            f"no span accepted: {len(result.errors)} rejected",
            {"errors": result.errors},
        )
    target = {
        "project_id": project_id,
        "organization_id": organization_id,
        "source": source,
        "api_key_id": api_key_id,
    }
    try:
        accepted = _store(spans=result.spans, **target).ids
    except IngestError:
        accepted, refused = _store_each(result.spans, **target)
        for position in refused:
            index = result.indexes[position]
            result.errors.append({"index": index, "message": STORE_REFUSED, "field": f"traces[{index}]"})
        result.errors.sort(key=lambda error: error["index"])
        if not accepted:
            raise IngestError(
                400,
                "invalid_request",
                f"no span accepted: {len(result.errors)} rejected",
                {"errors": result.errors},
            ) from None
    return _json(207 if result.errors else 202, {"accepted": accepted, "errors": result.errors})


def _store_each(spans: Sequence[Span], **target: Any) -> tuple[list[str], list[int]]:
    """The bulk write was refused: store span by span, so a value the store cannot hold (a
    number out of its range) rejects only its own span. The accepted ids, and the positions
    in `spans` of the refused ones."""
    accepted: list[str] = []
    refused: list[int] = []
    seen: set[str] = set()
    for position, span in enumerate(spans):
        if span.id in seen:  # the same id twice in one request: the first wins
            continue
        seen.add(span.id)
        try:
            accepted.extend(_store(spans=[span], **target).ids)
        except IngestError:
            SPANS_REJECTED.labels(target["source"]).inc()
            refused.append(position)
    return accepted, refused


def _unavailable() -> IngestError:
    return IngestError(
        503,
        "store_unavailable",
        "The trace store is unavailable; retry later.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _handled(handler):
    """IngestError becomes its response; PostgreSQL down anywhere (the key lookup
    included) becomes 503 with Retry-After, never a 500 or a 202."""

    def run(request: IngestRequest, *args: Any) -> IngestResponse:
        try:
            response = handler(request, *args)
        except IngestError as exc:
            response = exc.response
        except (OperationalError, InterfaceError) as exc:
            logger.error("trace store unavailable: %s", exc)
            response = _unavailable().response
        if request.response_headers:
            response.headers = {**request.response_headers, **response.headers}
        return response

    run.__name__ = handler.__name__
    return run


@_handled
def ingest_single(request: IngestRequest) -> IngestResponse:
    principal = _authenticate(request)
    _require_json(request)
    try:
        span = decode_single(_body(request), limits=span_limits())
    except SchemaError as exc:
        SPANS_REJECTED.labels("http").inc()
        raise _schema_error(exc) from exc
    stored = _store(
        project_id=principal.project_id,
        organization_id=principal.organization_id,
        spans=[span],
        source="http",
        api_key_id=principal.key_id,
    )
    return _json(202, {"accepted": 1, "ids": stored.ids})


@_handled
def ingest_batch(request: IngestRequest) -> IngestResponse:
    principal = _authenticate(request)
    _require_json(request)
    try:
        result = decode_batch(_body(request), limits=span_limits())
    except SchemaError as exc:
        raise _schema_error(exc) from exc
    return _batch_response(
        result,
        project_id=principal.project_id,
        organization_id=principal.organization_id,
        source="batch",
        api_key_id=principal.key_id,
    )


@_handled
def ingest_webhook(request: IngestRequest, endpoint_id: str) -> IngestResponse:
    """Standard Webhooks: the signature is the credential, no API key; limited per client IP."""
    decision = ip_take(WEBHOOK_IP, "UNTRACE_RATE_LIMIT_WEBHOOK_PER_IP", request.client_ip)
    _check_limit(request, decision, ip_refusal, WEBHOOK_IP)
    _require_json(request)
    try:
        endpoint_uuid = uuid.UUID(endpoint_id)
    except ValueError as exc:
        raise IngestError(404, "not_found", "No such webhook endpoint.") from exc
    body = _body(request)  # signatures cover the payload, not its transfer encoding
    try:
        verified = webhook_verify(endpoint_id=endpoint_uuid, headers=request.headers, body=body)
    except WebhookError as exc:
        raise IngestError(exc.status, exc.code, exc.message) from exc
    _check_backlog(verified.project_id)
    _check_quota(verified.organization_id)
    try:
        result = decode_batch(body, limits=span_limits())
    except SchemaError as exc:
        raise _schema_error(exc) from exc
    with transaction.atomic():  # the message id is taken only if its spans are stored
        if not message_record(message=verified):
            return _json(202, {"accepted": [], "errors": [], "replayed": True})
        return _batch_response(
            result,
            project_id=verified.project_id,
            organization_id=verified.organization_id,
            source="webhook",
        )


@_handled
def ingest_otlp(request: IngestRequest) -> IngestResponse:
    principal = _authenticate(request)
    response_type = otlp.response_content_type(request.content_type)
    try:
        result = otlp.decode_otlp(_body(request), content_type=request.content_type, limits=span_limits())
    except otlp.UnsupportedMediaType as exc:
        raise IngestError(415, "unsupported_media_type", str(exc)) from exc
    except otlp.OtlpDecodeError as exc:
        raise IngestError(400, "invalid_otlp", str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise IngestError(400, "invalid_otlp", "invalid OTLP JSON body: not valid UTF-8") from exc
    except SchemaError as exc:
        raise _schema_error(exc) from exc
    if result.rejected:
        SPANS_REJECTED.labels("otlp").inc(result.rejected)
    if result.spans:
        target = {
            "project_id": principal.project_id,
            "organization_id": principal.organization_id,
            "api_key_id": principal.key_id,
        }
        try:
            _store(spans=result.spans, source="otlp", **target)
        except IngestError:  # partial success: only the spans the store cannot hold are rejected
            _, refused = _store_each(result.spans, source="otlp", **target)
            result.errors.extend(f"span {result.spans[position].id}: {STORE_REFUSED}" for position in refused)
    body = otlp.encode_otlp_response(
        rejected=result.rejected, message=result.error_message, content_type=response_type
    )
    return IngestResponse(200, body, content_type=response_type)
