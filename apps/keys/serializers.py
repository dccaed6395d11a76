from __future__ import annotations

from rest_framework import serializers

from apps.core.fields import StrictCharField, StrictIntegerField
from apps.keys.models import ApiKey, Scope
from apps.keys.services import MAX_ROTATION_GRACE, RATE_LIMIT_MAX


class RateLimitField(StrictIntegerField):
    """A key's own rate or burst: an integer from 1 to RATE_LIMIT_MAX, or null (the plan's)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=1, max_value=RATE_LIMIT_MAX, allow_null=True, **kwargs)


class ApiKeySerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(source="display_prefix", read_only=True)
    status = serializers.ChoiceField(choices=["active", "expired", "revoked"], read_only=True)
    rotated_from = serializers.UUIDField(source="rotated_from_id", read_only=True, allow_null=True)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices))
    allowed_cidrs = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "allowed_cidrs",
            "status",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "rotated_from",
            "rate_limit_per_second",
            "rate_limit_burst",
            "created_at",
        ]
        read_only_fields = fields


class IssuedKeySerializer(ApiKeySerializer):
    secret = serializers.CharField(help_text="The key itself; shown once, never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices),
        min_length=1,
        max_length=len(Scope.choices),
        default=lambda: [Scope.INGEST.value, Scope.PROXY.value],
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    allowed_cidrs = serializers.ListField(child=StrictCharField(max_length=64), max_length=100, default=list)
    rate_limit_per_second = RateLimitField(
        required=False,
        default=None,
        help_text="Requests a second this key may send on average; null: its plan's. Never above the plan's.",
    )
    rate_limit_burst = RateLimitField(
        required=False,
        default=None,
        help_text="Requests this key may send at once; null: its plan's (twice the rate without one).",
    )


class ApiKeyUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    rate_limit_per_second = RateLimitField(
        required=False, help_text="Requests a second on average; null: the plan's"
    )
    rate_limit_burst = RateLimitField(required=False, help_text="Requests at once; null: the plan's")


class ApiKeyRotateSerializer(serializers.Serializer):
    grace_seconds = StrictIntegerField(
        min_value=0, max_value=int(MAX_ROTATION_GRACE.total_seconds()), required=False
    )
