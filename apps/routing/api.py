"""/v1/routing: rules, the whole configuration, its versions, and dry-run."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Project
from apps.core.errors import ApiError, invalid_field
from apps.ingest.limits import span_limits
from apps.routing.dry_run import dry_run
from apps.routing.errors import ConfigError
from apps.routing.models import RoutingConfigVersion
from apps.routing.services import (
    Actor,
    active_document,
    config_rollback,
    config_save,
    rule_delete,
    rule_save,
)
from apps.traces.pricing_overrides import price_overrides_for
from apps.traces.schema import SchemaError, SpanValidationError, decode_span
from apps.traces.selectors import recent_documents, row_document
from apps.traces.store import span_row

DRY_RUN_MAX_SPANS = 100
DRY_RUN_MAX_TRACES = 50


def _actor(request: Request) -> Actor:
    return Actor(key_id=request.auth.key_id)


def _config_error(exc: ConfigError) -> ApiError:
    return invalid_field(exc.field or "configuration", exc.message)


def _rule_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise invalid_field("id", f"{raw!r} is not a valid UUID") from None


def _object(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise invalid_field("body", "must be a JSON object")
    return dict(request.data)


RuleSchema = inline_serializer(
    "RoutingRule",
    {
        "id": serializers.UUIDField(read_only=True),
        "name": serializers.CharField(),
        "description": serializers.CharField(required=False),
        "enabled": serializers.BooleanField(default=True),
        "priority": serializers.IntegerField(default=100, help_text="Lower runs first"),
        "conditions": serializers.JSONField(help_text='{"all": [cond], "any": [cond], "not": cond}'),
        "actions": serializers.JSONField(
            help_text="destinations, split, fallback, shadow, transformations, sampling, metadata, stop"
        ),
    },
)
RuleListSchema = inline_serializer(
    "RoutingRuleList", {"version": serializers.IntegerField(), "rules": RuleSchema.__class__(many=True)}
)
ConfigSchema = inline_serializer(
    "RoutingConfig",
    {
        "version": serializers.IntegerField(read_only=True),
        "base_version": serializers.IntegerField(
            write_only=True, required=False, help_text="Refuse with 409 if the live version is another"
        ),
        "rules": serializers.JSONField(),
        "default_destinations": serializers.ListField(child=serializers.UUIDField()),
        "sampling": serializers.JSONField(allow_null=True),
        "transformations": serializers.JSONField(),
        "destination_policies": serializers.JSONField(),
    },
)


class RuleListView(APIView):
    """Routing rules of the key's project. Every change saves a new configuration version."""

    @extend_schema(operation_id="routing_rules_list", responses={200: RuleListSchema})
    def get(self, request: Request) -> Response:
        version, document = active_document(request.auth.project_id)
        return Response({"version": version, "rules": document["rules"]})

    @extend_schema(request=RuleSchema, responses={201: RuleSchema})
    def post(self, request: Request) -> Response:
        try:
            rule, version = rule_save(
                project_id=request.auth.project_id, rule=_object(request), actor=_actor(request)
            )
        except ConfigError as exc:
            raise _config_error(exc) from exc
        return Response(
            rule, status=status.HTTP_201_CREATED, headers={"X-Untrace-Routing-Version": version.number}
        )


class RuleDetailView(APIView):
    def _find(self, request: Request, rule_id: uuid.UUID) -> dict[str, Any]:
        _, document = active_document(request.auth.project_id)
        for rule in document["rules"]:
            if rule.get("id") == str(rule_id):
                return rule
        raise ApiError(status_code=404, code="not_found", message=f"No routing rule with id {rule_id}.")

    @extend_schema(responses={200: RuleSchema})
    def get(self, request: Request, rule_id: str) -> Response:
        return Response(self._find(request, _rule_id(rule_id)))

    def _save(self, request: Request, rule_id: uuid.UUID, rule: dict[str, Any]) -> Response:
        try:
            saved, version = rule_save(
                project_id=request.auth.project_id, rule=rule, actor=_actor(request), rule_id=rule_id
            )
        except ConfigError as exc:
            raise _config_error(exc) from exc
        return Response(saved, headers={"X-Untrace-Routing-Version": version.number})

    @extend_schema(request=RuleSchema, responses={200: RuleSchema})
    def put(self, request: Request, rule_id: str) -> Response:
        return self._save(request, _rule_id(rule_id), _object(request))

    @extend_schema(request=RuleSchema, responses={200: RuleSchema})
    def patch(self, request: Request, rule_id: str) -> Response:
        rule_id = _rule_id(rule_id)
        current = self._find(request, rule_id)
        return self._save(request, rule_id, {**current, **_object(request)})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, rule_id: str) -> Response:
        version = rule_delete(
            project_id=request.auth.project_id, rule_id=_rule_id(rule_id), actor=_actor(request)
        )
        return Response(
            status=status.HTTP_204_NO_CONTENT, headers={"X-Untrace-Routing-Version": version.number}
        )


class ConfigView(APIView):
    """The whole routing document: rules, default destinations, project sampling
    and transformations, per-destination policies."""

    @extend_schema(responses={200: ConfigSchema})
    def get(self, request: Request) -> Response:
        version, document = active_document(request.auth.project_id)
        return Response({"version": version, **document})

    @extend_schema(request=ConfigSchema, responses={200: ConfigSchema})
    def put(self, request: Request) -> Response:
        body = _object(request)
        body.pop("version", None)
        base = body.pop("base_version", None)
        if base is not None and (isinstance(base, bool) or not isinstance(base, int)):
            raise invalid_field("base_version", "must be an integer")
        try:
            version = config_save(
                project_id=request.auth.project_id,
                document=body,
                actor=_actor(request),
                summary="Replaced the routing configuration",
                base_version=base,
            )
        except ConfigError as exc:
            raise _config_error(exc) from exc
        return Response({"version": version.number, **version.document})


def _version_summary(version: RoutingConfigVersion) -> dict[str, Any]:
    return {
        "version": version.number,
        "summary": version.summary,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by.email if version.created_by else None,
        "created_by_key": str(version.created_by_key_id) if version.created_by_key_id else None,
    }


class VersionListView(APIView):
    """Every saved version, newest first (at most the last 200)."""

    @extend_schema(operation_id="routing_versions_list", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        versions = (
            RoutingConfigVersion.objects.for_project(request.auth.project_id)
            .select_related("created_by")
            .order_by("-number")[:200]
        )
        return Response({"versions": [_version_summary(v) for v in versions]})


def _number(raw: str) -> int:
    if not raw.isdigit():
        raise invalid_field("number", f"{raw!r} is not a version number")
    return int(raw)


class VersionDetailView(APIView):
    """One version's document and the JSON Patch that made it from the previous one."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, number: str) -> Response:
        version = (
            RoutingConfigVersion.objects.for_project(request.auth.project_id)
            .select_related("created_by")
            .filter(number=_number(number))
            .first()
        )
        if version is None:
            raise ApiError(
                status_code=404, code="not_found", message=f"No routing configuration version {number}."
            )
        return Response(
            {**_version_summary(version), "changes": version.changes, "document": version.document}
        )


class RollbackView(APIView):
    @extend_schema(request=None, responses={200: ConfigSchema})
    def post(self, request: Request, number: str) -> Response:
        version = config_rollback(
            project_id=request.auth.project_id, number=_number(number), actor=_actor(request)
        )
        return Response({"version": version.number, **version.document})


DryRunSchema = inline_serializer(
    "RoutingDryRunRequest",
    {
        "spans": serializers.ListField(
            child=serializers.JSONField(), required=False, max_length=DRY_RUN_MAX_SPANS
        ),
        "recent": serializers.IntegerField(required=False, min_value=1, max_value=DRY_RUN_MAX_TRACES),
        "config": serializers.JSONField(
            required=False, help_text="A proposed routing document to try instead"
        ),
    },
)


def _given_spans(items: Any, project: Project) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise invalid_field("spans", "must be a non-empty list of spans")
    if len(items) > DRY_RUN_MAX_SPANS:
        raise invalid_field("spans", f"at most {DRY_RUN_MAX_SPANS} spans per dry-run")
    limits = span_limits()
    overrides = price_overrides_for(project.organization_id)
    now = timezone.now()
    documents = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid_field(f"spans[{index}]", "must be a span object")
        try:
            span = decode_span(item, limits=limits)
        except SpanValidationError as exc:
            path = f"spans[{index}].{exc.field_path}" if exc.field_path else f"spans[{index}]"
            raise invalid_field(path, exc.message) from exc
        except SchemaError as exc:
            raise invalid_field(f"spans[{index}]", exc.message) from exc
        documents.append(row_document(span_row(span, received_at=now, price_overrides=overrides)))
    return documents


class DryRunView(APIView):
    """What routing would do with the given spans, or with the project's most recent
    traces, under the live or a proposed configuration. Nothing is sent."""

    required_scope = "read"

    @extend_schema(request=DryRunSchema, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        body = _object(request)
        unknown = sorted(set(body) - {"spans", "recent", "config"})
        if unknown:
            raise invalid_field(unknown[0], "is not a dry-run parameter (spans, recent, config)")
        project = Project.objects.get(pk=request.auth.project_id)
        if ("spans" in body) == ("recent" in body):
            raise invalid_field("spans", "give either spans or recent (a number of recent traces)")
        if "spans" in body:
            spans = _given_spans(body["spans"], project)
        else:
            recent = body["recent"]
            if (
                isinstance(recent, bool)
                or not isinstance(recent, int)
                or not 1 <= recent <= DRY_RUN_MAX_TRACES
            ):
                raise invalid_field("recent", f"must be an integer from 1 to {DRY_RUN_MAX_TRACES}")
            spans = recent_documents(project_id=project.pk, traces=recent)
        document = body.get("config")
        if document is not None and not isinstance(document, dict):
            raise invalid_field("config", "must be a routing configuration object")
        try:
            result = dry_run(project=project, spans=spans, document=document, api_key_id=request.auth.key_id)
        except ConfigError as exc:
            raise invalid_field(f"config.{exc.field}" if exc.field else "config", exc.message) from exc
        return Response(result)
