from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Project
from apps.audit.services import actor_from_request
from apps.core.api import ProjectScopedViewSet
from apps.core.errors import ApiError, invalid_field
from apps.keys.models import ApiKey
from apps.keys.serializers import (
    ApiKeyCreateSerializer,
    ApiKeyRotateSerializer,
    ApiKeySerializer,
    ApiKeyUpdateSerializer,
    IssuedKeySerializer,
)
from apps.keys.services import IssuedKey, KeyParamError, key_create, key_revoke, key_rotate, key_update

ERROR = inline_serializer(
    "ApiKeyErrorEnvelope",
    {
        "error": inline_serializer(
            "ApiKeyError",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(allow_null=True),
            },
        )
    },
)


def _issued(issued: IssuedKey) -> dict:
    return {**ApiKeySerializer(issued.key).data, "secret": issued.secret}


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """API keys of the calling key's project. Listing needs `read`; changes need `write`."""

    model = ApiKey
    serializer_class = ApiKeySerializer

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: IssuedKeySerializer})
    def create(self, request: Request) -> Response:
        params = ApiKeyCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        escalated = set(data["scopes"]) - request.auth.scopes
        if escalated:
            raise ApiError(
                status_code=403,
                code="scope_escalation",
                message=f"A key cannot grant scopes it lacks: {sorted(escalated)}.",
                details={"field": "scopes"},
            )
        try:
            issued = key_create(
                project=Project.objects.get(pk=self.project_id),
                name=data["name"],
                scopes=data["scopes"],
                expires_at=data["expires_at"],
                allowed_cidrs=data["allowed_cidrs"],
                rate_limit_per_second=data["rate_limit_per_second"],
                rate_limit_burst=data["rate_limit_burst"],
                actor=actor_from_request(request),
            )
        except KeyParamError as exc:
            raise invalid_field(exc.field, exc.message) from exc
        return Response(_issued(issued), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ApiKeyUpdateSerializer,
        responses={
            200: ApiKeySerializer,
            400: OpenApiResponse(ERROR, description="invalid_request: details.field names the field"),
            404: OpenApiResponse(ERROR, description="not_found: no such key in this project"),
            429: OpenApiResponse(ERROR, description="rate_limited: the calling key's limit; see Retry-After"),
        },
        description="Rename a key or set its own rate limit (null: its plan's). A key's limit can be "
        "lower than its plan's, never higher: the lower of the two applies.",
    )
    def partial_update(self, request: Request, **kwargs: str) -> Response:
        key = self.get_object()
        params = ApiKeyUpdateSerializer(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        try:
            key = key_update(key=key, actor=actor_from_request(request), **params.validated_data)
        except KeyParamError as exc:
            raise invalid_field(exc.field, exc.message) from exc
        return Response(ApiKeySerializer(key).data)

    @extend_schema(request=None, responses={200: ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, **kwargs: str) -> Response:
        key = key_revoke(key=self.get_object(), actor=actor_from_request(request))
        return Response(ApiKeySerializer(key).data)

    @extend_schema(request=ApiKeyRotateSerializer, responses={201: IssuedKeySerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, **kwargs: str) -> Response:
        params = ApiKeyRotateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        seconds = params.validated_data.get("grace_seconds")
        try:
            issued = key_rotate(
                key=self.get_object(),
                grace=None if seconds is None else timedelta(seconds=seconds),
                actor=actor_from_request(request),
            )
        except KeyParamError as exc:
            raise invalid_field(exc.field, exc.message) from exc
        return Response(_issued(issued), status=status.HTTP_201_CREATED)
