"""GET /v1/audit-log: security-relevant changes of the key's project and its organization."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events_visible
from apps.core.errors import invalid_field


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "action",
            "project",
            "actor_user",
            "actor_key_id",
            "target_type",
            "target_id",
            "details",
            "ip",
        ]
        read_only_fields = fields


class AuditFilter(serializers.Serializer):
    action = serializers.RegexField(
        r"^[a-z0-9_]+(\.[a-z0-9_]+)*$",
        max_length=64,
        required=False,
        help_text="One action, e.g. key.created",
        error_messages={"invalid": "must be an action name such as key.created"},
    )
    since = serializers.DateTimeField(required=False, help_text="Events at or after this time")
    until = serializers.DateTimeField(required=False, help_text="Events before this time")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and until <= since:
            raise serializers.ValidationError({"until": "must be after since"})
        return attrs


class AuditLogView(generics.ListAPIView):
    """Key and destination changes, routing versions, webhook secrets, proxy settings,
    invitations and memberships, newest first. Needs the `read` scope."""

    serializer_class = AuditEventSerializer
    required_scope = "read"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # OpenAPI generation has no caller
            return AuditEvent.objects.none()
        unknown = sorted(set(self.request.query_params) - {*AuditFilter().fields, "cursor", "limit"})
        if unknown:
            raise invalid_field(unknown[0], "is not a filter (action, since, until)")
        params = AuditFilter(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        principal = self.request.auth
        return audit_events_visible(
            project_id=principal.project_id,
            organization_id=principal.organization_id,
            **params.validated_data,
        )

    @extend_schema(parameters=[AuditFilter])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
