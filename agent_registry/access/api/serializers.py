from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from agent_registry.access import origins
from agent_registry.access.models import AgentAccess, AgentConfiguration
from agent_registry.access.services import CONFIGURATION_FIELDS
from agent_registry.core.api import BoundedJSONField, InputSerializer, ModelInputSerializer
from agent_registry.core.identifiers import refuse_invisible


class SubscriptionOutput(serializers.ModelSerializer):
    """Never includes the key or its hash.

    ``quota_used`` and ``quota_remaining`` are what the gateway enforces this month, not
    the database's trailing copy: the ``quota_used_shown`` that
    ``selectors.accesses_with_quota_shown`` sets on each subscription it hands out.
    """

    tenant = serializers.CharField(source="tenant.slug", read_only=True)
    project = serializers.UUIDField(source="project_id", read_only=True)
    agent = serializers.CharField(source="agent_instance.agent_id", read_only=True)
    plan = serializers.UUIDField(source="plan_id", read_only=True)
    quota_used = serializers.IntegerField(source="quota_used_shown", read_only=True)
    quota_remaining = serializers.SerializerMethodField()

    class Meta:
        model = AgentAccess
        fields = [
            "id",
            "name",
            "tenant",
            "project",
            "agent",
            "plan",
            "status",
            "billing_channel",
            "key_prefix",
            "previous_key_prefix",
            "previous_key_expires_at",
            "key_rotated_at",
            "quota_limit",
            "quota_used",
            "quota_remaining",
            "quota_reset_at",
            "rate_limit_per_second",
            "revoked_at",
            "revocation_reason",
            "last_used_at",
            "total_requests",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_quota_remaining(self, access) -> int | None:
        if access.quota_limit is None:
            return None
        return max(access.quota_limit - access.quota_used_shown, 0)


class SubscriptionIssuedOutput(SubscriptionOutput):
    api_key = serializers.CharField(
        read_only=True, help_text="Shown only in this response; store it now."
    )

    checkout_url = serializers.URLField(
        required=False,
        help_text="A paid plan bought by card only: Stripe's page to pay on (the key "
        "answers 402 until paid).",
    )
    session_id = serializers.CharField(
        required=False, help_text="A paid plan bought by card only: the Checkout Session."
    )

    class Meta(SubscriptionOutput.Meta):
        fields = [*SubscriptionOutput.Meta.fields, "api_key", "checkout_url", "session_id"]
        read_only_fields = fields


class SubscriptionCreateInput(InputSerializer):
    agent = serializers.SlugField(max_length=100)
    plan = serializers.UUIDField()
    project = serializers.UUIDField()
    name = serializers.CharField(
        max_length=200, required=False, default="", allow_blank=True, validators=[refuse_invisible]
    )


class OriginListField(serializers.ListField):
    child = serializers.CharField(max_length=255)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return origins.clean_entries(super().to_internal_value(data))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ConfigurationSerializer(ModelInputSerializer):
    widget_theme = BoundedJSONField(required=False)
    rag_sources = BoundedJSONField(kind=list, required=False)
    training_examples = BoundedJSONField(kind=list, required=False, max_bytes=262_144)
    context_variables = BoundedJSONField(required=False)
    allowed_domains = OriginListField(required=False)
    temperature = serializers.DecimalField(
        max_digits=3,
        decimal_places=2,
        min_value=Decimal("0"),
        max_value=Decimal("2"),
        required=False,
        allow_null=True,
    )

    class Meta:
        model = AgentConfiguration
        fields = [*CONFIGURATION_FIELDS, "last_rag_sync_at", "updated_at"]
        read_only_fields = ["last_rag_sync_at", "updated_at"]
