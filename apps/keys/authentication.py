from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.core.errors import ApiError
from apps.keys.auth import KeyAuthError, KeyPrincipal, authenticate_key, client_ip, key_from_headers


class ApiKeyAuthentication(BaseAuthentication):
    """`X-Untrace-Key: <key>` or `Authorization: Bearer <key>`."""

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, KeyPrincipal] | None:
        raw = key_from_headers(request.headers)
        if raw is None:
            return None  # DRF answers 401 through authenticate_header
        try:
            principal = authenticate_key(raw, client_ip=client_ip(request.META))
        except KeyAuthError as exc:
            raise ApiError(status_code=exc.status, code=exc.code, message=exc.message) from exc
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="untrace"'


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
