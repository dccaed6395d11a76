"""/v1/proxy-settings: the project's proxy upstreams and stored provider keys."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request
from apps.core.errors import invalid_field
from apps.proxy.project_settings import proxy_settings_save, proxy_settings_view
from apps.routing.errors import ConfigError

SettingsSchema = inline_serializer(
    "ProxySettings",
    {
        "openai_upstream": serializers.CharField(help_text="Empty: the deployment's default"),
        "anthropic_upstream": serializers.CharField(),
        "openai_key_set": serializers.BooleanField(read_only=True),
        "anthropic_key_set": serializers.BooleanField(read_only=True),
        "defaults": serializers.DictField(read_only=True),
    },
)
UpdateSchema = inline_serializer(
    "ProxySettingsUpdate",
    {
        "openai_upstream": serializers.CharField(required=False, allow_blank=True),
        "anthropic_upstream": serializers.CharField(required=False, allow_blank=True),
        "openai_key": serializers.CharField(
            required=False, allow_null=True, help_text="Write-only; null clears"
        ),
        "anthropic_key": serializers.CharField(required=False, allow_null=True, help_text="Write-only"),
    },
)


class ProxySettingsView(APIView):
    """Upstreams of the project's proxy calls (e.g. Azure OpenAI, a gateway, a
    self-hosted model) and provider keys used when a call carries none."""

    @extend_schema(responses={200: SettingsSchema})
    def get(self, request: Request) -> Response:
        return Response(proxy_settings_view(request.auth.project_id))

    @extend_schema(request=UpdateSchema, responses={200: SettingsSchema})
    def patch(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise invalid_field("body", "must be a JSON object")
        try:
            return Response(
                proxy_settings_save(
                    project_id=request.auth.project_id,
                    changes=dict(request.data),
                    actor=actor_from_request(request),
                )
            )
        except ConfigError as exc:
            raise invalid_field(exc.field, exc.message) from exc
