"""Reads for tenants, projects and memberships, scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from agent_registry.core.errors import NotFound, ValidationFailed
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
    TenantRole,
)
from agent_registry.tenants.permissions import (
    is_operator,
    member_tenant_ids,
    require_role,
    visible_tenants,
)


def tenant_for_write(user, slug: str, minimum: TenantRole) -> AgentTenant:
    """The tenant a request body names, if the caller can see it and holds ``minimum`` in it.

    An unknown or invisible slug is 400, as for any unknown id in a body (another
    tenant's slug answers exactly like one that doesn't exist); too low a role is 403.
    """
    tenant = visible_tenants(user).filter(slug=slug).first()
    if tenant is None:
        raise ValidationFailed(details={"tenant": ["No such tenant."]})
    require_role(user, tenant, minimum)
    return tenant


def tenant_in_path(user, slug: str, minimum: TenantRole) -> AgentTenant:
    """The tenant a URL names: 404 unless the caller can see it (another tenant's slug
    answers like one that doesn't exist), 403 below ``minimum``."""
    # No slug holds NUL, and PostgreSQL refuses to even compare text holding it.
    tenant = visible_tenants(user).filter(slug=slug).first() if "\x00" not in slug else None
    if tenant is None:
        raise NotFound("No such tenant.")
    require_role(user, tenant, minimum)
    return tenant


def projects_visible_to(user) -> QuerySet[AgentProject]:
    projects = AgentProject.objects.select_related("tenant")
    if is_operator(user):
        return projects
    return projects.filter(tenant_id__in=member_tenant_ids(user))


def project_for_write(user, project_id: Any, minimum: TenantRole) -> AgentProject:
    """The project a request body names, if the caller can see it and holds ``minimum``
    in its tenant: 400 on ``project`` for an unknown or invisible id, 403 for too low a role.
    """
    project = projects_visible_to(user).filter(pk=project_id).first()
    if project is None:
        raise ValidationFailed(details={"project": ["No such project."]})
    require_role(user, project.tenant, minimum)
    return project


def members_of(tenant: AgentTenant) -> list[TenantMembership | TenantInvitation]:
    """The tenant's memberships, then the invitations still waiting for an account."""
    memberships = TenantMembership.objects.filter(tenant=tenant).select_related("user")
    invitations = TenantInvitation.objects.filter(tenant=tenant)
    return [*memberships, *invitations]


def member_named(tenant: AgentTenant, username: str) -> TenantMembership | TenantInvitation:
    """The membership (or waiting invitation) of ``username``, ignoring case; 404 if none."""
    member: TenantMembership | TenantInvitation | None = None
    # No username holds NUL, and PostgreSQL refuses to even compare text holding it.
    if "\x00" not in username:
        member = (
            TenantMembership.objects.filter(tenant=tenant, user__username__iexact=username).first()
            or TenantInvitation.objects.filter(tenant=tenant, username__iexact=username).first()
        )
    if member is None:
        raise NotFound(f"'{username}' is not a member of '{tenant.slug}'.")
    return member
