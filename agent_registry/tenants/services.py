"""Writes for tenants, projects and memberships."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from agent_registry.core.errors import Conflict
from agent_registry.gateway import invalidation
from agent_registry.tenants.models import AgentProject, AgentTenant, TenantMembership, TenantRole

TENANT_EDITABLE_FIELDS = frozenset(
    {
        "name",
        "waldur_customer_uuid",
        "waldur_customer_name",
        "tenancy_model",
        "dedicated_namespace",
        "dedicated_resource_quota",
        "monthly_api_calls_limit",
        "max_agents",
        "metadata",
    }
)


@transaction.atomic
def tenant_create(*, name: str, slug: str, **fields: Any) -> AgentTenant:
    unknown = set(fields) - TENANT_EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"Not tenant fields: {sorted(unknown)}")
    if AgentTenant.all_objects.filter(slug=slug).exists():
        raise Conflict(
            f"A tenant with slug '{slug}' already exists.", details={"slug": ["Already taken."]}
        )
    waldur_uuid = fields.get("waldur_customer_uuid")
    if waldur_uuid and AgentTenant.all_objects.filter(waldur_customer_uuid=waldur_uuid).exists():
        raise Conflict(
            "A tenant is already linked to that Waldur customer.",
            details={"waldur_customer_uuid": ["Already linked."]},
        )
    return AgentTenant.objects.create(name=name, slug=slug, **fields)


@transaction.atomic
def tenant_update(*, tenant: AgentTenant, **fields: Any) -> AgentTenant:
    unknown = set(fields) - TENANT_EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"Not tenant fields: {sorted(unknown)}")
    tenant = AgentTenant.objects.select_for_update().get(pk=tenant.pk)
    previous_limit = tenant.monthly_api_calls_limit
    for field, value in fields.items():
        setattr(tenant, field, value)
    tenant.save()
    tenant_limit_saved(tenant, previous=previous_limit)
    return tenant


def tenant_limit_saved(tenant: AgentTenant, *, previous: int | None) -> None:
    """Tell the gateway about a changed ``monthly_api_calls_limit`` once it commits."""
    limit = tenant.monthly_api_calls_limit
    if limit == previous:
        return
    tenant_id = str(tenant.pk)
    transaction.on_commit(
        lambda: invalidation.tenant_limit_changed(
            tenant_id, limit, was_limited=previous is not None
        )
    )


@transaction.atomic
def tenant_suspend(*, tenant: AgentTenant, reason: str) -> AgentTenant:
    """Every key of the tenant stops working: key checks read ``is_active`` live."""
    tenant = AgentTenant.objects.select_for_update().get(pk=tenant.pk)
    if not tenant.is_active:
        raise Conflict(f"Tenant '{tenant.slug}' is already suspended.")
    tenant.is_active = False
    tenant.suspended_at = timezone.now()
    tenant.suspension_reason = reason
    tenant.save(update_fields=["is_active", "suspended_at", "suspension_reason", "updated_at"])
    tenant_id = str(tenant.pk)
    transaction.on_commit(lambda: invalidation.tenant_suspended(tenant_id))
    return tenant


@transaction.atomic
def tenant_reactivate(*, tenant: AgentTenant) -> AgentTenant:
    tenant = AgentTenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.is_active:
        raise Conflict(f"Tenant '{tenant.slug}' is not suspended.")
    tenant.is_active = True
    tenant.suspended_at = None
    tenant.suspension_reason = ""
    tenant.save(update_fields=["is_active", "suspended_at", "suspension_reason", "updated_at"])
    tenant_id = str(tenant.pk)
    transaction.on_commit(lambda: invalidation.tenant_reactivated(tenant_id))
    return tenant


@transaction.atomic
def project_create(
    *,
    tenant: AgentTenant,
    name: str,
    waldur_project_uuid: uuid.UUID | None = None,
    waldur_project_name: str = "",
) -> AgentProject:
    if AgentProject.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(f"Tenant '{tenant.slug}' already has a project named '{name}'.")
    return AgentProject.objects.create(
        tenant=tenant,
        name=name,
        waldur_project_uuid=waldur_project_uuid,
        waldur_project_name=waldur_project_name,
    )


@transaction.atomic
def project_update(*, project: AgentProject, **fields: Any) -> AgentProject:
    project = AgentProject.objects.select_for_update().get(pk=project.pk)
    new_name = fields.get("name")
    if (
        new_name
        and new_name != project.name
        and AgentProject.objects.filter(tenant_id=project.tenant_id, name=new_name).exists()
    ):
        raise Conflict(f"The tenant already has a project named '{new_name}'.")
    for field, value in fields.items():
        setattr(project, field, value)
    project.save()
    return project


@transaction.atomic
def membership_set(
    *, tenant: AgentTenant, username: str, role: TenantRole, email: str = ""
) -> TenantMembership:
    """Give ``username`` a role in the tenant, creating the user if needed.

    OIDC users log in with their token's ``sub`` as username, so a membership can be
    granted before their first login.
    """
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"email": email}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership, _ = TenantMembership.objects.update_or_create(
        tenant=tenant, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: TenantMembership) -> None:
    membership.delete()
