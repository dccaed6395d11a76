"""Django adapters of the ingest endpoints (WSGI and tests; production ASGI uses `asgi.py`)."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.core.errors import error_response
from apps.ingest import core
from apps.ingest.limits import span_limits
from apps.keys.auth import client_ip


def _call(handler: Callable[..., core.IngestResponse], request: HttpRequest, *args: str) -> HttpResponse:
    try:
        body = request.body
    except RequestDataTooBig:  # past DATA_UPLOAD_MAX_MEMORY_SIZE; 413 like the ASGI fast path
        limit = span_limits().max_body_bytes
        return error_response(413, "payload_too_large", f"the request body is larger than {limit} bytes")
    ingest_request = core.IngestRequest(
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        client_ip=client_ip(request.META),
    )
    result = handler(ingest_request, *args)
    response = HttpResponse(result.body, status=result.status, content_type=result.content_type)
    for name, value in result.headers.items():
        response[name] = value
    return response


def _post_only(request: HttpRequest) -> HttpResponse | None:
    if request.method != "POST":
        response = error_response(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
        response["Allow"] = "POST"
        return response
    return None


@csrf_exempt
def traces_batch(request: HttpRequest) -> HttpResponse:
    return _post_only(request) or _call(core.ingest_batch, request)


@csrf_exempt
def otlp_traces(request: HttpRequest) -> HttpResponse:
    return _post_only(request) or _call(core.ingest_otlp, request)


@csrf_exempt
def webhook(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    return _post_only(request) or _call(core.ingest_webhook, request, endpoint_id)


def traces_single(request: HttpRequest) -> HttpResponse:
    return _call(core.ingest_single, request)
