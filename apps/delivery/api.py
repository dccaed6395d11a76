"""/v1/deliveries: the delivery ledger, dead letters and replay."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import ProjectScopedViewSet
from apps.core.errors import invalid_field
from apps.delivery.models import Delivery, DeliveryStatus
from apps.delivery.selectors import deliveries_filtered
from apps.delivery.services import deliveries_replay


class DeliverySerializer(serializers.ModelSerializer):
    span_ids = serializers.SerializerMethodField(help_text="Row ids of the stored spans it carries")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "destination",
            "fallback_destination",
            "fallback_of",
            "batch_id",
            "role",
            "status",
            "span_count",
            "attempts",
            "replays",
            "created_at",
            "first_attempt_at",
            "next_attempt_at",
            "finished_at",
            "expires_at",
            "last_status",
            "last_error",
            "item_errors",
            "span_ids",
        ]
        read_only_fields = fields

    def get_span_ids(self, delivery: Delivery) -> list[int]:
        return [item[0] for item in delivery.items]


class DeliveryFilter(serializers.Serializer):
    destination = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=DeliveryStatus.values, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    trace_id = serializers.CharField(required=False, max_length=1024)


def _filters(data: Any) -> dict[str, Any]:
    params = DeliveryFilter(data=data)
    params.is_valid(raise_exception=True)
    values = params.validated_data
    return {
        "destination_id": values.get("destination"),
        "status": values.get("status"),
        "since": values.get("since"),
        "until": values.get("until"),
        "trace_id": values.get("trace_id"),
    }


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Every delivery of the project's spans to a destination, newest first:
    pending, delivered (the ledger), dead (dead letters, with the platform's
    answer) or rerouted (to the rule's fallback)."""

    model = Delivery
    serializer_class = DeliverySerializer

    def safely_get_queryset(self, queryset):
        if self.action != "list":
            return queryset
        unknown = sorted(set(self.request.query_params) - {*DeliveryFilter().fields, "cursor", "limit"})
        if unknown:
            raise invalid_field(unknown[0], "is not a filter (destination, status, since, until, trace_id)")
        return deliveries_filtered(project_id=self.project_id, **_filters(self.request.query_params))

    @extend_schema(parameters=[DeliveryFilter])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, **kwargs: Any) -> Response:
        delivery = self.get_object()
        if delivery.status != DeliveryStatus.DEAD:
            raise invalid_field(
                "id", f"only dead-lettered deliveries are replayed; this one is {delivery.status}"
            )
        deliveries_replay(Delivery.objects.filter(pk=delivery.pk))
        delivery.refresh_from_db()
        return Response(DeliverySerializer(delivery).data)

    @extend_schema(
        operation_id="deliveries_replay_matching",
        request=DeliveryFilter,
        responses={200: inline_serializer("ReplayResult", {"replayed": serializers.IntegerField()})},
    )
    @action(detail=False, methods=["post"], url_path="replay")
    def replay_matching(self, request: Request) -> Response:
        """Replay every dead-lettered delivery matching the filter."""
        if not isinstance(request.data, dict):
            raise invalid_field("body", "must be a JSON object of filters")
        filters = _filters(request.data)
        filters["status"] = DeliveryStatus.DEAD
        queryset = deliveries_filtered(project_id=self.project_id, **filters)
        return Response({"replayed": deliveries_replay(queryset)})
