from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit.services import actor_from_request
from apps.core.api import ProjectScopedViewSet
from apps.core.fields import StrictCharField
from apps.ingest.models import WebhookEndpoint
from apps.ingest.webhooks import endpoint_create, endpoint_delete, endpoint_rotate_secret, endpoint_update


class WebhookEndpointSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Where to POST signed spans")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "enabled", "url", "last_received_at", "created_at", "updated_at"]
        read_only_fields = ["id", "url", "last_received_at", "created_at", "updated_at"]

    def get_url(self, endpoint: WebhookEndpoint) -> str:
        return f"/v1/webhooks/{endpoint.pk}"


class WebhookEndpointWriteSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    enabled = serializers.BooleanField(default=True)


class WebhookEndpointSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="Standard Webhooks signing secret (whsec_...)")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> dict:
    return {**WebhookEndpointSerializer(endpoint).data, "secret": secret}


class WebhookEndpointViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    ProjectScopedViewSet,
):
    """Signed-webhook ingest endpoints of the key's project. The secret is returned
    on creation and on rotation; the previous secret keeps verifying for 24 hours."""

    model = WebhookEndpoint
    serializer_class = WebhookEndpointSerializer

    @extend_schema(request=WebhookEndpointWriteSerializer, responses={201: WebhookEndpointSecretSerializer})
    def create(self, request: Request) -> Response:
        params = WebhookEndpointWriteSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        endpoint, secret = endpoint_create(
            project_id=self.project_id, actor=actor_from_request(request), **params.validated_data
        )
        return Response(_with_secret(endpoint, secret), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=WebhookEndpointWriteSerializer(partial=True), responses={200: WebhookEndpointSerializer}
    )
    def partial_update(self, request: Request, **kwargs: str) -> Response:
        endpoint = self.get_object()
        params = WebhookEndpointWriteSerializer(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        endpoint_update(endpoint=endpoint, changes=params.validated_data, actor=actor_from_request(request))
        return Response(WebhookEndpointSerializer(endpoint).data)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        endpoint_delete(endpoint=instance, actor=actor_from_request(self.request))

    @extend_schema(request=None, responses={200: WebhookEndpointSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, **kwargs: str) -> Response:
        endpoint = self.get_object()
        secret = endpoint_rotate_secret(endpoint=endpoint, actor=actor_from_request(request))
        return Response(_with_secret(endpoint, secret))
