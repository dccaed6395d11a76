"""One error envelope for the whole API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response


class ApiError(exceptions.APIException):
    """An error with an explicit status, code and message, raised by services or views."""

    def __init__(self, *, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.details = details


def invalid_field(field: str, message: str) -> ApiError:
    return ApiError(
        status_code=400,
        code="invalid_request",
        message=f"{field}: {message}",
        details={"field": field},
    )


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status_code: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status_code)


def _first_field_error(detail: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) of a DRF ValidationError detail tree."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):
                sub = f"{path}[{key}]"
            elif key == "non_field_errors":
                sub = path
            else:
                sub = f"{path}.{key}" if path else key
            return _first_field_error(value, sub)
    if isinstance(detail, list) and detail:
        if all(not isinstance(item, (dict, list)) for item in detail):
            return path, str(detail[0])
        for index, item in enumerate(detail):
            if item:
                return _first_field_error(item, f"{path}[{index}]")
    return path, str(detail)


_CODES = {
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.AuthenticationFailed: "unauthenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "invalid_json",
    exceptions.Throttled: "rate_limited",
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler producing the envelope for every API error."""
    from rest_framework.views import set_rollback  # DRF's views import this module's users

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None

    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, exc.message, exc.details)
    elif isinstance(exc, exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        text = f"{field}: {message}" if field else message
        body = error_body("invalid_request", text, {"field": field or None, "errors": exc.detail})
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
        body = error_body(code, str(exc.detail))
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


def json_not_found(request, exception=None):
    if request.path.startswith(("/v1/", "/otlp/")):
        return error_response(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_server_error(request):
    if request.path.startswith(("/v1/", "/otlp/")):
        return error_response(500, "internal_error", "Internal server error.")
    from django.views.defaults import server_error

    return server_error(request)
