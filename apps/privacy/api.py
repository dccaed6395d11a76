"""/v1/privacy: erasure of a user's or a session's spans, its record, and export."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request
from apps.core.api import ProjectScopedViewSet
from apps.core.errors import invalid_field
from apps.core.fields import StrictCharField
from apps.privacy.models import Erasure
from apps.privacy.selectors import subject_spans
from apps.privacy.services import erasure_create, export_recorded
from apps.traces.api import SpanDocumentSerializer, SpanPagination
from apps.traces.selectors import span_document

SUBJECT_MAX_LENGTH = 256
SUBJECTS = ("user_id", "session_id")

ERROR = inline_serializer(
    "PrivacyErrorEnvelope",
    {
        "error": inline_serializer(
            "PrivacyError",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(allow_null=True),
            },
        )
    },
)
BAD_INPUT = OpenApiResponse(
    ERROR,
    description="invalid_request: not exactly one of user_id and session_id, not a string, empty, "
    "or longer than 256 characters; details.field names the field",
)
NOT_FOUND = OpenApiResponse(ERROR, description="not_found: no such erasure in this project")
AUTH = {
    401: OpenApiResponse(ERROR, description="unauthenticated"),
    403: OpenApiResponse(ERROR, description="missing_scope"),
}


class SubjectSerializer(serializers.Serializer):
    """Exactly one of user_id and session_id."""

    user_id = StrictCharField(required=False, max_length=SUBJECT_MAX_LENGTH)
    session_id = StrictCharField(required=False, max_length=SUBJECT_MAX_LENGTH)


def subject_of(data: Any, *, also: tuple[str, ...] = ()) -> tuple[str, str]:
    """(kind, value) of a request body or query (`also`: other names it may hold);
    raises the 400 naming the field."""
    if hasattr(data, "keys"):
        unknown = sorted(set(data.keys()) - {*SUBJECTS, *also})
        if unknown:
            raise invalid_field(unknown[0], "is not a field (user_id or session_id)")
    params = SubjectSerializer(data=data)
    params.is_valid(raise_exception=True)
    given = [name for name in SUBJECTS if name in params.validated_data]
    if not given:
        raise invalid_field("user_id", "give one of user_id and session_id")
    if len(given) > 1:
        raise invalid_field("session_id", "give user_id or session_id, not both")
    name = given[0]
    return name.removesuffix("_id"), params.validated_data[name]


class ErasureSerializer(serializers.ModelSerializer):
    class Meta:
        model = Erasure
        fields = [
            "id",
            "subject_kind",
            "status",
            "spans_deleted",
            "deliveries_changed",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class ErasureViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ProjectScopedViewSet
):
    """Erase every span of a user or a session of the key's project and keep them out for good.
    POST needs the `write` scope, GET the `read` scope."""

    model = Erasure
    serializer_class = ErasureSerializer

    @extend_schema(responses={200: ErasureSerializer(many=True), **AUTH})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: ErasureSerializer, 400: BAD_INPUT, 404: NOT_FOUND, **AUTH})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        request=SubjectSerializer,
        responses={
            202: OpenApiResponse(
                ErasureSerializer,
                description="Recorded and in force: the subject is suppressed, its spans are deleted "
                "(status completed) or being deleted by a background task (status running).",
            ),
            400: BAD_INPUT,
            **AUTH,
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not isinstance(request.data, dict):
            raise invalid_field("user_id", "the body must be a JSON object with user_id or session_id")
        kind, value = subject_of(request.data)
        erasure = erasure_create(
            project_id=self.project_id, kind=kind, value=value, actor=actor_from_request(request)
        )
        return Response(ErasureSerializer(erasure).data, status=status.HTTP_202_ACCEPTED)


class ExportPagination(SpanPagination):
    ordering = ("start_time", "id")


class ExportView(APIView):
    """Every stored span of a user or a session of the key's project, oldest first, in pages
    (follow `next`). Needs the `read` scope."""

    required_scope = "read"

    @extend_schema(
        operation_id="privacy_export",
        parameters=[
            OpenApiParameter("user_id", OpenApiTypes.STR, description="one of user_id and session_id"),
            OpenApiParameter("session_id", OpenApiTypes.STR),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 200, default 50"),
        ],
        responses={
            200: inline_serializer(
                "PrivacyExportPage",
                {
                    "subject_kind": serializers.ChoiceField(choices=["user", "session"]),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": SpanDocumentSerializer(many=True),
                },
            ),
            400: BAD_INPUT,
            **AUTH,
        },
    )
    def get(self, request: Request) -> Response:
        kind, value = subject_of(request.query_params, also=("cursor", "limit"))
        project_id = request.auth.project_id
        paginator = ExportPagination()
        page = paginator.paginate_queryset(
            subject_spans(project_id=project_id, kind=kind, value=value), request, view=self
        )
        export_recorded(project_id=project_id, kind=kind, spans=len(page), actor=actor_from_request(request))
        return Response(
            {
                "subject_kind": kind,
                "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(),
                "results": [span_document(span) for span in page],
            }
        )
