from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.core.errors import ApiError
from apps.core.ratelimit import Decision, ip_refusal
from apps.keys.auth import KeyAuthError, KeyPrincipal, authenticate_key, client_ip, key_from_headers
from apps.keys.ratelimit import AUTH_FAILURES, auth_failure_take, key_refusal, key_take


class ApiKeyAuthentication(BaseAuthentication):
    """`X-Untrace-Key: <key>` or `Authorization: Bearer <key>`."""

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, KeyPrincipal] | None:
        raw = key_from_headers(request.headers)
        if raw is None:
            return None  # DRF answers 401 through authenticate_header
        ip = client_ip(request.META)
        try:
            principal = authenticate_key(raw, client_ip=ip)
        except KeyAuthError as exc:
            if exc.status == 401:
                _limited(request, auth_failure_take(ip), ip_refusal, AUTH_FAILURES)
            raise ApiError(status_code=exc.status, code=exc.code, message=exc.message) from exc
        _limited(request, key_take(principal), key_refusal)
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="untrace"'


def _limited(request: Request, decision: Decision | None, refusal: Callable, *args: str) -> None:
    """The bucket's X-RateLimit-* go on the answer (`RateLimitHeadersMiddleware`); 429 when empty."""
    if decision is None:
        return
    request._request.untrace_response_headers = decision.headers()
    if not decision.allowed:
        status, body, _ = refusal(decision, *args)
        error = ApiError(status_code=status, **{k: body["error"][k] for k in ("code", "message", "details")})
        error.wait = decision.retry_after
        raise error


class NotAuthenticated(exceptions.NotAuthenticated):
    default_detail = "Missing API key: send X-Untrace-Key or Authorization: Bearer."


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = ["ApiKeyHeader", "BearerKey"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-Untrace-Key"},
            {"type": "http", "scheme": "bearer"},
        ]
