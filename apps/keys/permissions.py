from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.core.errors import ApiError
from apps.keys.auth import KeyPrincipal
from apps.keys.authentication import NotAuthenticated


class HasScope(BasePermission):
    """The key must carry the view's scope: `required_scope`, or read/write by method."""

    def has_permission(self, request: Request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, KeyPrincipal):
            raise NotAuthenticated()
        scope = getattr(view, "required_scope", None) or (
            "read" if request.method in SAFE_METHODS else "write"
        )
        if not principal.has_scope(scope):
            raise ApiError(
                status_code=403,
                code="missing_scope",
                message=f"This API key lacks the '{scope}' scope.",
            )
        return True
