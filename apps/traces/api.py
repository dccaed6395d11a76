from __future__ import annotations

from datetime import UTC, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.errors import ApiError
from apps.core.fields import StrictCharField
from apps.core.pagination import CursorPagination
from apps.delivery.selectors import spans_by_destination
from apps.traces.selectors import (
    GROUPS,
    SpanFilters,
    span_document,
    spans_aggregate,
    spans_filtered,
    trace_tree,
)

KINDS = ["llm", "embedding", "chain", "agent", "tool", "retrieval", "span"]


class TimeField(serializers.DateTimeField):
    """RFC 3339 or epoch milliseconds, like the span times themselves."""

    def to_internal_value(self, value):
        if isinstance(value, str) and value.isascii() and value.isdigit():
            try:
                return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
            except (OverflowError, OSError, ValueError):
                self.fail("overflow")
        return super().to_internal_value(value)


class SpanFilterParams(serializers.Serializer):
    start = TimeField(required=False, source="start_", help_text="start_time >= this (RFC 3339 or epoch ms)")
    end = TimeField(required=False, source="end_", help_text="start_time < this")
    model = StrictCharField(required=False)
    provider = StrictCharField(required=False)
    kind = serializers.ChoiceField(choices=KINDS, required=False)
    status = serializers.ChoiceField(choices=["ok", "error"], required=False)
    session_id = StrictCharField(required=False)
    user_id = StrictCharField(required=False)
    trace_id = StrictCharField(required=False)
    environment = StrictCharField(required=False)
    tag = serializers.ListField(
        child=serializers.RegexField(r"^[^:]+:.*$"),
        required=False,
        help_text="metadata.tags filter as key:value, repeatable",
    )
    min_cost = serializers.DecimalField(max_digits=20, decimal_places=8, required=False)
    max_cost = serializers.DecimalField(max_digits=20, decimal_places=8, required=False)
    min_latency_ms = serializers.FloatField(required=False, min_value=0)
    max_latency_ms = serializers.FloatField(required=False, min_value=0)
    q = StrictCharField(
        required=False, max_length=200, help_text="case-insensitive text in inputs and outputs"
    )
    root = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: only spans without a parent"
    )

    def filters(self) -> SpanFilters:
        data = dict(self.validated_data)
        tags = tuple(tuple(t.split(":", 1)) for t in data.pop("tag", []))
        return SpanFilters(start=data.pop("start_", None), end=data.pop("end_", None), tags=tags, **data)


def _params(serializer_class: type[serializers.Serializer], request: Request) -> serializers.Serializer:
    data = {
        key: request.query_params.getlist(key) if key == "tag" else request.query_params.get(key)
        for key in request.query_params
    }
    params = serializer_class(data=data)
    params.is_valid(raise_exception=True)
    return params


class SpanPagination(CursorPagination):
    ordering = ("-start_time", "-id")
    page_size = 50


class SpanDocumentSerializer(serializers.Serializer):
    """A stored span, as in the canonical schema (documentation only)."""

    id = serializers.CharField()
    trace_id = serializers.CharField()
    parent_id = serializers.CharField(required=False)
    session_id = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    kind = serializers.ChoiceField(choices=KINDS)
    start_time = serializers.DateTimeField()
    end_time = serializers.DateTimeField(required=False)
    provider = serializers.CharField(required=False)
    model = serializers.CharField(required=False)
    status = serializers.ChoiceField(choices=["ok", "error"])
    request = serializers.JSONField(required=False)
    response = serializers.JSONField(required=False)
    metadata = serializers.JSONField(required=False)
    metrics = serializers.JSONField(required=False)
    error = serializers.JSONField(required=False)
    attributes = serializers.JSONField(required=False)
    received_at = serializers.DateTimeField()


class TraceListView(APIView):
    """Search spans of the key's project, newest first, with cursor pagination."""

    required_scope = "read"

    @extend_schema(
        operation_id="traces_list",
        parameters=[
            SpanFilterParams,
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT),
        ],
        responses={
            200: inline_serializer(
                "SpanPage",
                {
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": SpanDocumentSerializer(many=True),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        filters = _params(SpanFilterParams, request).filters()
        queryset = spans_filtered(project_id=request.auth.project_id, filters=filters)
        paginator = SpanPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([span_document(span) for span in page])


class AggregateParams(SpanFilterParams):
    group_by = serializers.ChoiceField(
        choices=[*GROUPS, "destination"], required=False, allow_null=True, default=None
    )


class TraceAggregateView(APIView):
    """Counts, tokens, cost, latency percentiles and error rate, optionally grouped."""

    required_scope = "read"

    @extend_schema(
        operation_id="traces_aggregate", parameters=[AggregateParams], responses={200: OpenApiTypes.OBJECT}
    )
    def get(self, request: Request) -> Response:
        params = _params(AggregateParams, request)
        group_by = params.validated_data.pop("group_by")
        project_id = request.auth.project_id
        if group_by == "destination":  # the spans each destination received
            result = spans_aggregate(project_id=project_id, filters=params.filters(), group_by=None)
            spans = spans_filtered(project_id=project_id, filters=params.filters())
            result.update(
                group_by="destination", groups=spans_by_destination(project_id=project_id, spans=spans)
            )
            return Response(result)
        result = spans_aggregate(project_id=project_id, filters=params.filters(), group_by=group_by)
        return Response(result)


class TraceDetailView(APIView):
    """One trace: its spans as a tree, with totals."""

    required_scope = "read"

    @extend_schema(operation_id="traces_retrieve", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, trace_id: str) -> Response:
        tree = trace_tree(project_id=request.auth.project_id, trace_id=trace_id)
        if tree is None:
            raise ApiError(
                status_code=404, code="not_found", message=f"No trace {trace_id!r} in this project."
            )
        return Response(tree)
