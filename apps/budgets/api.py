"""`/v1/budgets`: LLM spend budgets of the key's project (read scope to list, write to change)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit.services import actor_from_request
from apps.budgets.models import Budget, Period
from apps.budgets.selectors import BudgetStatus, budgets_status
from apps.budgets.services import BudgetError, budget_create, budget_delete, budget_update
from apps.core.api import ProjectScopedViewSet
from apps.core.errors import invalid_field
from apps.core.fields import StrictCharField, StrictIntegerField

ERROR = inline_serializer(
    "BudgetErrorEnvelope",
    {
        "error": inline_serializer(
            "BudgetError",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(allow_null=True),
            },
        )
    },
)
BAD_INPUT = OpenApiResponse(
    ERROR, description="invalid_request: the message and details.field name the field"
)
NOT_FOUND = OpenApiResponse(
    ERROR, description="not_found: no such budget in this project (or a malformed id: 400)"
)
AUTH = {
    401: OpenApiResponse(ERROR, description="unauthenticated"),
    403: OpenApiResponse(ERROR, description="missing_scope"),
}


class BudgetSerializer(serializers.ModelSerializer):
    api_key = serializers.UUIDField(
        source="api_key_id", allow_null=True, help_text="The key whose spend counts; null: the whole project"
    )
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=2)
    thresholds = serializers.ListField(
        child=serializers.IntegerField(), help_text="Percents that send an alert"
    )
    alert_emails = serializers.ListField(child=serializers.EmailField())
    spend_usd = serializers.SerializerMethodField(help_text="Traced cost in the current period (USD)")
    percent_used = serializers.SerializerMethodField()
    period_start = serializers.SerializerMethodField()
    resets_at = serializers.SerializerMethodField(help_text="When the current period ends (UTC)")
    exhausted = serializers.SerializerMethodField(help_text="Spend has reached the amount this period")

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "api_key",
            "amount_usd",
            "period",
            "thresholds",
            "alert_emails",
            "alert_webhook_url",
            "hard_stop",
            "enabled",
            "spend_usd",
            "percent_used",
            "period_start",
            "resets_at",
            "exhausted",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _status(self, budget: Budget) -> BudgetStatus:
        return self.context["statuses"][budget.pk]

    def get_spend_usd(self, budget: Budget) -> str:
        return str(self._status(budget).spend_usd)

    def get_percent_used(self, budget: Budget) -> float:
        return self._status(budget).percent_used

    def get_period_start(self, budget: Budget) -> str:
        return self._status(budget).period_start.strftime("%Y-%m-%dT%H:%M:%SZ")

    def get_resets_at(self, budget: Budget) -> str:
        return self._status(budget).resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    def get_exhausted(self, budget: Budget) -> bool:
        return self._status(budget).exhausted


class BudgetCreatedSerializer(BudgetSerializer):
    webhook_secret = serializers.CharField(
        help_text="Standard Webhooks secret (whsec_...) that signs alert webhooks: shown only now"
    )

    class Meta(BudgetSerializer.Meta):
        fields = [*BudgetSerializer.Meta.fields, "webhook_secret"]
        read_only_fields = fields


class BudgetWriteSerializer(serializers.Serializer):
    """The writable fields; the service checks their meaning (ranges, emails, URL, key)."""

    name = StrictCharField(max_length=200)
    api_key = serializers.UUIDField(
        required=False, allow_null=True, help_text="A key of this project: only its spans count"
    )
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Greater than 0")
    period = serializers.ChoiceField(choices=Period.choices, default=Period.MONTHLY)
    thresholds = serializers.ListField(
        child=StrictIntegerField(),
        required=False,
        help_text="Percents 1..1000, unique; default [50, 80, 100]",
    )
    alert_emails = serializers.ListField(child=StrictCharField(), required=False)
    alert_webhook_url = StrictCharField(required=False, allow_blank=True, max_length=500)
    hard_stop = serializers.BooleanField(
        default=False, help_text="Once spent, the proxy answers 429 budget_exceeded until the period resets"
    )
    enabled = serializers.BooleanField(default=True)


def _values(data: dict[str, Any]) -> dict[str, Any]:
    values = dict(data)
    if "api_key" in values:
        values["api_key_id"] = values.pop("api_key")
    return values


def _render(budget: Budget, **extra: Any) -> dict[str, Any]:
    data = BudgetSerializer(budget, context={"statuses": budgets_status([budget])}).data
    return {**data, **extra}


@extend_schema_view(
    list=extend_schema(responses={200: BudgetSerializer(many=True), **AUTH}),
    retrieve=extend_schema(responses={200: BudgetSerializer, 400: BAD_INPUT, 404: NOT_FOUND, **AUTH}),
)
class BudgetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Spend budgets of the key's project (or of one of its keys), with this period's spend."""

    model = Budget
    serializer_class = BudgetSerializer

    def safely_get_queryset(self, queryset):
        return queryset.select_related("api_key").order_by("created_at", "id")

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["statuses"] = {}
        return context

    def get_serializer(self, *args: Any, **kwargs: Any):
        if args and not getattr(self, "swagger_fake_view", False):
            instances = args[0] if isinstance(args[0], list | tuple) else [args[0]]
            kwargs.setdefault("context", self.get_serializer_context())
            kwargs["context"]["statuses"] = budgets_status(list(instances))
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        request=BudgetWriteSerializer, responses={201: BudgetCreatedSerializer, 400: BAD_INPUT, **AUTH}
    )
    def create(self, request: Request) -> Response:
        params = BudgetWriteSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            budget, secret = budget_create(
                project_id=self.project_id,
                actor=actor_from_request(request),
                **_values(params.validated_data),
            )
        except BudgetError as exc:
            raise invalid_field(exc.field, exc.message) from exc
        return Response(_render(budget, webhook_secret=secret), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=BudgetWriteSerializer(partial=True),
        responses={200: BudgetSerializer, 400: BAD_INPUT, 404: NOT_FOUND, **AUTH},
    )
    def partial_update(self, request: Request, **kwargs: Any) -> Response:
        budget = self.get_object()
        params = BudgetWriteSerializer(data=request.data, partial=True)
        params.is_valid(raise_exception=True)
        try:
            budget = budget_update(
                budget, actor=actor_from_request(request), **_values(params.validated_data)
            )
        except BudgetError as exc:
            raise invalid_field(exc.field, exc.message) from exc
        return Response(_render(budget))

    @extend_schema(responses={204: None, 400: BAD_INPUT, 404: NOT_FOUND, **AUTH})
    def destroy(self, request: Request, **kwargs: Any) -> Response:
        budget_delete(self.get_object(), actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
