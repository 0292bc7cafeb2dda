from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agent_registry.core.api import BoundedJSONField, InputSerializer, ModelInputSerializer
from agent_registry.core.identifiers import refuse_invisible
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
    TenantRole,
)
from agent_registry.tenants.services import TENANT_FIELDS


class TenantOutput(serializers.ModelSerializer):
    class Meta:
        model = AgentTenant
        fields = [
            "id",
            "name",
            "slug",
            "waldur_customer_uuid",
            "waldur_customer_name",
            "tenancy_model",
            "dedicated_namespace",
            "monthly_api_calls_limit",
            "max_agents",
            "is_active",
            "suspended_at",
            "suspension_reason",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TenantCreateInput(ModelInputSerializer):
    metadata = BoundedJSONField(required=False)
    dedicated_resource_quota = BoundedJSONField(required=False)

    class Meta:
        model = AgentTenant
        fields = ["slug", *TENANT_FIELDS]
        # Duplicates are conflicts (409), decided by the service like every other one.
        extra_kwargs: dict[str, dict[str, Any]] = {
            "slug": {"validators": []},
            "waldur_customer_uuid": {"validators": []},
        }


class TenantUpdateInput(TenantCreateInput):
    class Meta(TenantCreateInput.Meta):
        fields = list(TENANT_FIELDS)


class ProjectOutput(serializers.ModelSerializer):
    tenant: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )

    class Meta:
        model = AgentProject
        fields = [
            "id",
            "tenant",
            "name",
            "waldur_project_uuid",
            "waldur_project_name",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProjectCreateInput(InputSerializer):
    tenant = serializers.SlugField(max_length=63)
    name = serializers.CharField(max_length=200, validators=[refuse_invisible])
    waldur_project_uuid = serializers.UUIDField(required=False, allow_null=True)
    waldur_project_name = serializers.CharField(max_length=200, required=False, default="")


class ProjectUpdateInput(InputSerializer):
    name = serializers.CharField(max_length=200, required=False, validators=[refuse_invisible])
    waldur_project_name = serializers.CharField(max_length=200, required=False)
    is_active = serializers.BooleanField(required=False)


class MembershipOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    status = serializers.SerializerMethodField(
        help_text="`active`, or `invited`: no account of that name yet; the role is applied "
        "when it is created (first OIDC login)."
    )

    class Meta:
        model = TenantMembership
        fields = ["username", "email", "role", "status", "created_at"]
        read_only_fields = fields

    def get_status(self, membership) -> str:
        return "active"


class InvitationOutput(MembershipOutput):
    username = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)

    class Meta(MembershipOutput.Meta):
        model = TenantInvitation  # type: ignore[assignment]  # same fields, other model

    def get_status(self, invitation) -> str:
        return "invited"


def member_output(row: TenantMembership | TenantInvitation) -> dict:
    if isinstance(row, TenantInvitation):
        return InvitationOutput(row).data
    return MembershipOutput(row).data


class MembershipInput(InputSerializer):
    username = serializers.CharField(
        max_length=150,
        validators=[refuse_invisible],
        help_text="The user's OIDC subject (`sub`) or local username, matched ignoring case. "
        "Without an account of that name yet, the role waits as an invitation.",
    )
    email = serializers.EmailField(required=False, default="")
    role = serializers.ChoiceField(choices=TenantRole.choices)
