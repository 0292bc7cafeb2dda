"""Customer organisations (mirrors of Waldur customers), their projects and members."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from agent_registry.core.identifiers import refuse_invisible
from agent_registry.core.models import SoftDeleteModel, TimeStampedModel


class TenancyModel(models.TextChoices):
    SHARED = "shared", "Shared runtime"
    DEDICATED = "dedicated", "Dedicated namespace"


class TenantRole(models.TextChoices):
    """Document 3.1. Ordered from most to least powerful; see ``ROLE_RANK``."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {
    TenantRole.VIEWER: 1,
    TenantRole.DEVELOPER: 2,
    TenantRole.ADMIN: 3,
    TenantRole.OWNER: 4,
}


class AgentTenant(SoftDeleteModel):
    name = models.CharField(max_length=200, validators=[refuse_invisible])
    slug = models.SlugField(max_length=63, unique=True)
    waldur_customer_uuid = models.UUIDField(null=True, blank=True, unique=True)
    waldur_customer_name = models.CharField(max_length=200, blank=True)
    tenancy_model = models.CharField(
        max_length=20, choices=TenancyModel.choices, default=TenancyModel.SHARED
    )
    dedicated_namespace = models.CharField(max_length=63, blank=True)
    dedicated_resource_quota = models.JSONField(default=dict, blank=True)
    monthly_api_calls_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Calls per month across all subscriptions; empty = none."
    )
    max_agents = models.PositiveIntegerField(default=10)
    is_active = models.BooleanField(default=True, db_index=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.CharField(max_length=500, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(SoftDeleteModel.Meta):
        ordering = ["name"]
        constraints = [
            # "Acme" beside "acme" could pass for it (core/identifiers.py).
            models.UniqueConstraint(Lower("slug"), name="tenant_slug_unique_ignoring_case")
        ]

    def __str__(self) -> str:
        return self.name


class AgentProject(SoftDeleteModel):
    tenant = models.ForeignKey(AgentTenant, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=200, validators=[refuse_invisible])
    waldur_project_uuid = models.UUIDField(null=True, blank=True, unique=True)
    waldur_project_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(SoftDeleteModel.Meta):
        ordering = ["tenant__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"],
                condition=models.Q(deleted_at__isnull=True),
                name="project_name_unique_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"


class TenantMembership(TimeStampedModel):
    """A user's role in one tenant. OIDC users are matched by their ``sub`` (username)."""

    tenant = models.ForeignKey(AgentTenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships"
    )
    role = models.CharField(max_length=20, choices=TenantRole.choices)

    class Meta:
        ordering = ["tenant__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.tenant}"


class TenantInvitation(TimeStampedModel):
    """A role granted to a username no account has yet (an OIDC ``sub`` before its first
    login). It becomes a TenantMembership when a user of that name is created
    (tenants/receivers.py); granting a role never creates an account."""

    tenant = models.ForeignKey(AgentTenant, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150, validators=[refuse_invisible])
    email = models.EmailField(blank=True)
    role = models.CharField(max_length=20, choices=TenantRole.choices)

    class Meta:
        ordering = ["tenant__name", "username"]
        constraints = [
            models.UniqueConstraint(
                "tenant", Lower("username"), name="one_invitation_per_username_per_tenant"
            )
        ]

    def __str__(self) -> str:
        return f"{self.username} is invited as {self.role} of {self.tenant}"
