from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit.services import actor_from_request
from apps.core.api import ProjectScopedViewSet
from apps.core.errors import invalid_field
from apps.core.fields import StrictCharField
from apps.destinations.models import Destination
from apps.destinations.services import destination_create, destination_delete, destination_update
from apps.destinations.types import destination_types
from apps.routing.errors import ConfigError


class DestinationSerializer(serializers.ModelSerializer):
    secrets_set = serializers.SerializerMethodField(
        help_text="Names of the credentials stored (values are never returned)"
    )

    class Meta:
        model = Destination
        fields = [
            "id",
            "name",
            "type",
            "config",
            "secrets_set",
            "enabled",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_secrets_set(self, destination: Destination) -> list[str]:
        return sorted(destination.secrets)


class DestinationDetailSerializer(DestinationSerializer):
    health = serializers.SerializerMethodField(
        help_text="circuit, pending_spans, lag_seconds, success_rate_24h, dead_letters_24h, last_error"
    )

    class Meta(DestinationSerializer.Meta):
        fields = [*DestinationSerializer.Meta.fields, "health"]
        read_only_fields = fields

    def get_health(self, destination: Destination) -> dict:
        from apps.delivery.selectors import destination_health

        return destination_health(destination)


class DestinationWriteSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    type = serializers.ChoiceField(choices=sorted(destination_types()))
    config = serializers.DictField(help_text="Settings of the type; credentials are write-only")
    enabled = serializers.BooleanField(default=True)


class DestinationUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    config = serializers.DictField(
        required=False, help_text="Merged into the stored settings; null clears a key"
    )
    enabled = serializers.BooleanField(required=False)


def _config_error(exc: ConfigError):
    return invalid_field(exc.field, exc.message)


class DestinationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ProjectScopedViewSet
):
    """Where the project's traces are delivered. Credentials are encrypted at rest
    and never returned; `secrets_set` names the ones stored."""

    model = Destination
    serializer_class = DestinationSerializer

    def safely_get_queryset(self, queryset):
        return queryset.order_by("created_at", "id")

    def get_serializer_class(self):
        return DestinationDetailSerializer if self.action == "retrieve" else DestinationSerializer

    @extend_schema(request=DestinationWriteSerializer, responses={201: DestinationSerializer})
    def create(self, request: Request) -> Response:
        params = DestinationWriteSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            destination = destination_create(
                project_id=self.project_id, actor=actor_from_request(request), **params.validated_data
            )
        except ConfigError as exc:
            raise _config_error(exc) from exc
        return Response(DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DestinationUpdateSerializer, responses={200: DestinationSerializer})
    def partial_update(self, request: Request, **kwargs: Any) -> Response:
        destination = self.get_object()
        params = DestinationUpdateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            destination = destination_update(
                destination, actor=actor_from_request(request), **params.validated_data
            )
        except ConfigError as exc:
            raise _config_error(exc) from exc
        return Response(DestinationSerializer(destination).data)

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "DestinationTestResult",
                {
                    "ok": serializers.BooleanField(),
                    "status": serializers.IntegerField(allow_null=True),
                    "message": serializers.CharField(),
                    "body": serializers.CharField(),
                    "latency_ms": serializers.FloatField(),
                    "span_id": serializers.CharField(),
                },
            )
        },
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, **kwargs: Any) -> Response:
        """Send a sample span now and report the platform's answer (nothing is retried or recorded)."""
        from apps.delivery.services import destination_test

        return Response(destination_test(self.get_object()))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, **kwargs: Any) -> Response:
        destination_delete(self.get_object(), actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
