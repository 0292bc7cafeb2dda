from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from agent_registry.agents import runtime as runtime_rules
from agent_registry.agents.models import (
    AgentInstance,
    AgentPlan,
    AgentStateTransition,
    BillingModel,
)
from agent_registry.agents.services import AGENT_FIELDS, PLAN_FIELDS
from agent_registry.core.api import BoundedJSONField, ModelInputSerializer, TagListField
from agent_registry.core.identifiers import refuse_invisible
from agent_registry.core.money import CURRENCIES


class RuntimeField(serializers.JSONField):
    """The ``runtime`` object, validated into a RuntimeDescription."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object with a 'type'.")
        return runtime_rules.parse_runtime(value)

    def to_representation(self, agent):
        return runtime_rules.describe(agent)


class RuntimeToolOutput(serializers.Serializer):
    """One tool of an ``mcp`` agent's server, as recorded when it was deployed."""

    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True, allow_blank=True)
    input_schema = serializers.DictField(read_only=True)


class AgentOutput(serializers.ModelSerializer):
    project = serializers.UUIDField(source="project_id", read_only=True)
    tenant = serializers.CharField(source="project.tenant.slug", read_only=True)
    runtime = serializers.SerializerMethodField()
    tools = RuntimeToolOutput(source="runtime_tools", many=True, read_only=True)
    tools_recorded_at = serializers.DateTimeField(
        source="runtime_tools_recorded_at", read_only=True
    )

    class Meta:
        model = AgentInstance
        fields = [
            "id",
            "agent_id",
            "name",
            "description",
            "version",
            "category",
            "tags",
            "project",
            "tenant",
            "state",
            "state_changed_at",
            "runtime",
            "tools",
            "tools_recorded_at",
            "max_concurrent_requests",
            "timeout_seconds",
            "config",
            "metadata",
            "waldur_offering_uuid",
            "listing_error",
            "listing_synced_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_runtime(self, agent) -> dict:
        return runtime_rules.describe(agent)


class AgentCreateInput(ModelInputSerializer):
    project = serializers.UUIDField()
    tags = TagListField(required=False)
    runtime = RuntimeField(required=False)
    config = BoundedJSONField(required=False)
    metadata = BoundedJSONField(required=False)

    class Meta:
        model = AgentInstance
        fields = ["agent_id", "project", "runtime", *AGENT_FIELDS]
        # duplicates → 409 from the service
        extra_kwargs: dict[str, dict[str, Any]] = {"agent_id": {"validators": []}}


class AgentUpdateInput(AgentCreateInput):
    class Meta(AgentCreateInput.Meta):
        fields = ["runtime", *AGENT_FIELDS]


class TransitionOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)
    at = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = AgentStateTransition
        fields = ["id", "from_state", "to_state", "actor", "reason", "at"]
        read_only_fields = fields


PRICE: dict[str, Any] = {
    "max_digits": 12,
    "decimal_places": 6,
    "min_value": Decimal("0"),
    "coerce_to_string": True,
}


class PlanOutput(serializers.ModelSerializer):
    agent = serializers.CharField(source="agent.agent_id", read_only=True)
    price_per_call = serializers.DecimalField(**PRICE, read_only=True)
    price_per_1k_tokens = serializers.DecimalField(**PRICE, read_only=True)
    overage_price_per_call = serializers.DecimalField(**PRICE, read_only=True, allow_null=True)

    class Meta:
        model = AgentPlan
        fields = [
            "id",
            "agent",
            *PLAN_FIELDS,
            "version",
            "previous_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PlanCreateInput(ModelInputSerializer):
    currency = serializers.ChoiceField(choices=sorted(CURRENCIES), default="USD")
    price_per_call = serializers.DecimalField(**PRICE, required=False)
    price_per_1k_tokens = serializers.DecimalField(**PRICE, required=False)
    # Subscription plans only (plan_prices_check says so with a 400 otherwise).
    overage_price_per_call = serializers.DecimalField(**PRICE, required=False, allow_null=True)
    billing_model = serializers.ChoiceField(choices=BillingModel.choices)

    class Meta:
        model = AgentPlan
        fields = list(PLAN_FIELDS)
        # The uniqueness validator goes (409 from the service); the character check stays.
        extra_kwargs: dict[str, dict[str, Any]] = {"name": {"validators": [refuse_invisible]}}


class PlanUpdateInput(PlanCreateInput):
    """PATCH of a plan: a price field that changes makes a new version (plan_update)."""

    currency = serializers.ChoiceField(choices=sorted(CURRENCIES), required=False)

    class Meta(PlanCreateInput.Meta):
        fields = [f for f in PLAN_FIELDS if f != "is_active"]

    def to_internal_value(self, data):
        # Deactivation has its own endpoint; anything not editable is named, not ignored.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {field: ["Not an editable plan field."] for field in unknown}
                )
        return super().to_internal_value(data)


class CatalogPlanOutput(PlanOutput):
    class Meta(PlanOutput.Meta):
        fields = ["id", *(field for field in PLAN_FIELDS if field != "is_active")]
        read_only_fields = fields


class CatalogAgentOutput(serializers.ModelSerializer):
    plans = CatalogPlanOutput(source="active_plans", many=True, read_only=True)
    runtime_type = serializers.CharField(read_only=True)
    # An MCP server's tools (empty for other runtimes): what a subscriber can call.
    tools = RuntimeToolOutput(source="runtime_tools", many=True, read_only=True)

    class Meta:
        model = AgentInstance
        fields = [
            "agent_id",
            "name",
            "description",
            "version",
            "category",
            "tags",
            "runtime_type",
            "tools",
            "plans",
        ]
        read_only_fields = fields
