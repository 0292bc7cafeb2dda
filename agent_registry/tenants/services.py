"""Writes for tenants, projects and memberships."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from agent_registry.core.errors import Conflict, ValidationFailed
from agent_registry.core.identifiers import user_by_username
from agent_registry.core.live_state import live_state
from agent_registry.core.services import model_update, writable_fields_check
from agent_registry.tenants.errors import LastOwner
from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
    TenantRole,
)
from agent_registry.tenants.permissions import require_member_change

# What the API, the admin and Waldur's sync may write on a tenant (the slug is set once).
TENANT_FIELDS = (
    "name",
    "waldur_customer_uuid",
    "waldur_customer_name",
    "tenancy_model",
    "dedicated_namespace",
    "dedicated_resource_quota",
    "monthly_api_calls_limit",
    "max_agents",
    "metadata",
)
# The API writes the first three; ``metadata`` is the admin's.
PROJECT_FIELDS = ("name", "waldur_project_name", "is_active", "metadata")


@transaction.atomic
def tenant_create(*, name: str, slug: str, **fields: Any) -> AgentTenant:
    writable_fields_check(fields, allowed=TENANT_FIELDS, model=AgentTenant)
    if AgentTenant.all_objects.filter(slug__iexact=slug).exists():
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
    tenant = AgentTenant.objects.select_for_update().get(pk=tenant.pk)
    previous_limit = tenant.monthly_api_calls_limit
    model_update(tenant, fields, allowed=TENANT_FIELDS)
    tenant.save()
    _tenant_limit_announce(tenant, previous=previous_limit)
    return tenant


def _tenant_limit_announce(tenant: AgentTenant, *, previous: int | None) -> None:
    """Tell live enforcement about a changed ``monthly_api_calls_limit`` once it commits."""
    limit = tenant.monthly_api_calls_limit
    if limit == previous:
        return
    tenant_id = str(tenant.pk)
    transaction.on_commit(
        lambda: live_state().tenant_limit_changed(
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
    transaction.on_commit(lambda: live_state().tenant_suspended(tenant_id))
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
    transaction.on_commit(lambda: live_state().tenant_reactivated(tenant_id))
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
    if (
        waldur_project_uuid
        and AgentProject.all_objects.filter(waldur_project_uuid=waldur_project_uuid).exists()
    ):
        # A 400 on the field, as the API has always answered it.
        raise ValidationFailed(
            "The request is not valid.",
            details={"waldur_project_uuid": ["A project with this Waldur UUID already exists."]},
        )
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
    was_active = project.is_active
    model_update(project, fields, allowed=PROJECT_FIELDS)
    project.save()
    if was_active != project.is_active:
        # Archiving stops the project's keys in the gateway at once, as a suspension does.
        project_id, archived = str(project.pk), not project.is_active
        transaction.on_commit(lambda: live_state().project_archived(project_id, archived))
    return project


@transaction.atomic
def membership_set(
    *, tenant: AgentTenant, username: str, role: TenantRole, email: str = "", by: Any = None
) -> TenantMembership | TenantInvitation:
    """Give ``username`` (matched ignoring case) a role in the tenant.

    No account of that name yet (an OIDC user before their first login): the role
    waits as an invitation, which becomes the membership when the account is created
    (``invitations_accept``). No account is ever created here.

    ``by``: the person asking (the API's and the portal's caller), held to
    ``permissions.require_member_change`` against the member's role as it is under the
    tenant's lock; None for the registry's own writes (Waldur's sync, the demo seed).
    """
    user = user_by_username(username)
    if by is not None:
        _lock_tenant(tenant)
        current = (
            (
                TenantMembership.objects.filter(tenant=tenant, user=user)
                if user is not None
                else TenantInvitation.objects.filter(tenant=tenant, username__iexact=username)
            )
            .values_list("role", flat=True)
            .first()
        )
        require_member_change(by, tenant, current=current, new=role)
    if user is None:
        invitation, _ = TenantInvitation.objects.update_or_create(
            tenant=tenant,
            username__iexact=username,
            defaults={"role": role, "email": email},
            create_defaults={"username": username, "role": role, "email": email},
        )
        return invitation
    if role != TenantRole.OWNER:
        _keep_an_owner(tenant=tenant, user=user)
    membership, _ = TenantMembership.objects.update_or_create(
        tenant=tenant, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: TenantMembership | TenantInvitation, by: Any = None) -> None:
    """Remove a member or a waiting invitation; ``by`` as for ``membership_set``."""
    if by is not None:
        _lock_tenant(membership.tenant)
        current = (
            type(membership).objects.filter(pk=membership.pk).values_list("role", flat=True).first()
        )
        require_member_change(by, membership.tenant, current=current, new=None)
    if isinstance(membership, TenantMembership):
        _keep_an_owner(tenant=membership.tenant, user=membership.user)
    membership.delete()


@transaction.atomic
def invitations_accept(*, user: Any) -> list[TenantMembership]:
    """Turn the invitations waiting for ``user``'s name into memberships (on its creation)."""
    invitations = TenantInvitation.objects.select_for_update().filter(
        username__iexact=user.username
    )
    memberships = []
    for invitation in invitations:
        membership, _ = TenantMembership.objects.get_or_create(
            tenant_id=invitation.tenant_id, user=user, defaults={"role": invitation.role}
        )
        memberships.append(membership)
        invitation.delete()
    return memberships


def _keep_an_owner(*, tenant: AgentTenant, user) -> None:
    """Refuse (409 ``last_owner``) to demote or remove the tenant's last owner.

    The tenant row is locked first, so two owners demoting each other at once are
    serialised and the second sees the first's result. Call inside the transaction.
    """
    _lock_tenant(tenant)
    owners = TenantMembership.objects.filter(tenant_id=tenant.pk, role=TenantRole.OWNER)
    if owners.filter(user=user).exists() and not owners.exclude(user=user).exists():
        raise LastOwner(
            f"'{user.get_username()}' is the last owner of '{tenant.slug}'; "
            "make another member owner first."
        )


def _lock_tenant(tenant: AgentTenant) -> None:
    """Lock the tenant's row until the transaction ends: its members change one at a time."""
    list(AgentTenant.all_objects.select_for_update().filter(pk=tenant.pk).values_list("pk"))


@transaction.atomic
def memberships_edit_keeping_an_owner(*, tenant_ids: Iterable[Any], edit: Callable[[], Any]) -> Any:
    """Run ``edit`` (the admin's own writes of memberships) and refuse (409
    ``last_owner``, rolled back) if it left a tenant that had an owner without one.

    The tenants' rows are locked first, as ``_keep_an_owner`` does.
    """
    ids = sorted({uuid.UUID(str(tenant_id)) for tenant_id in tenant_ids})
    list(AgentTenant.all_objects.select_for_update().filter(pk__in=ids).values_list("pk"))
    owners = TenantMembership.objects.filter(role=TenantRole.OWNER)
    owned = {str(pk) for pk in owners.filter(tenant_id__in=ids).values_list("tenant_id", flat=True)}
    result = edit()
    still = {str(pk) for pk in owners.filter(tenant_id__in=ids).values_list("tenant_id", flat=True)}
    if owned - still:
        slugs = AgentTenant.all_objects.filter(pk__in=owned - still).values_list("slug", flat=True)
        raise LastOwner(
            f"That would leave {', '.join(sorted(slugs))} without an owner; "
            "make another member owner first."
        )
    return result
