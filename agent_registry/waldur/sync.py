"""Mirroring Waldur's customers, projects and roles into tenants, projects and members.

Each ``<entity>_<verb>`` makes the registry's row match what Waldur says now, through
the tenants' and access's services, and returns what it did (``"unchanged"`` when
nothing): running it twice changes nothing the second time. Waldur is the source of
truth for the rows it owns (those with a ``waldur_*_uuid``); rows made in the registry
are never touched.
"""

from __future__ import annotations

import logging
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.access.services import access_revoke
from agent_registry.core.errors import RegistryError
from agent_registry.core.identifiers import user_by_username
from agent_registry.core.runs import CountedRun
from agent_registry.tenants import services as tenants
from agent_registry.tenants.models import (
    ROLE_RANK,
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
    TenantRole,
)
from agent_registry.waldur.client import (
    WaldurClient,
    WaldurCustomer,
    WaldurProject,
    WaldurRole,
)
from agent_registry.waldur.errors import WaldurError, WaldurNotFound
from agent_registry.waldur.models import WaldurRoleGrant, WaldurSyncRun

logger = logging.getLogger(__name__)

# The suspension reason the sync writes and recognises: it lifts only its own.
BLOCKED_REASON = "Blocked in Waldur."
DELETED_REASON = "Deleted in Waldur."
REVOKED_REASON = "Deleted or archived in Waldur."

# Waldur's role names (role_name of /api/customers/<uuid>/users/) → the tenant role.
ROLE_MAP = {
    "CUSTOMER.OWNER": TenantRole.OWNER,
    "CUSTOMER.MANAGER": TenantRole.ADMIN,
    "CUSTOMER.SUPPORT": TenantRole.VIEWER,
    "PROJECT.MANAGER": TenantRole.ADMIN,
    "PROJECT.ADMIN": TenantRole.DEVELOPER,
    "PROJECT.MEMBER": TenantRole.VIEWER,
}


def role_for(role: WaldurRole) -> TenantRole | None:
    """The most powerful tenant role among the user's Waldur roles, or None."""
    mapped = [ROLE_MAP[r] for r in (role.customer_role, *role.project_roles) if r in ROLE_MAP]
    return max(mapped, key=lambda r: ROLE_RANK[r]) if mapped else None


def slug_for(customer: WaldurCustomer) -> str:
    """From the abbreviation (else the name), a free slug: ``acme``, ``acme-2``…"""
    base = (slugify(customer.abbreviation) or slugify(customer.name) or "customer")[:55]
    base = base.strip("-_") or "customer"
    slug, n = base, 1
    while AgentTenant.all_objects.filter(slug__iexact=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


# --- Customers → tenants --------------------------------------------------------------


@transaction.atomic
def customer_mirror(*, customer: WaldurCustomer) -> str:
    tenant = AgentTenant.all_objects.filter(waldur_customer_uuid=customer.uuid).first()
    if tenant is None:
        tenant = tenants.tenant_create(
            name=customer.name[:200],
            slug=slug_for(customer),
            waldur_customer_uuid=customer.uuid,
            waldur_customer_name=customer.name[:200],
        )
        outcome = "created"
    else:
        outcome = "unchanged"
        if tenant.name != customer.name or tenant.waldur_customer_name != customer.name:
            tenant = tenants.tenant_update(
                tenant=tenant, name=customer.name[:200], waldur_customer_name=customer.name[:200]
            )
            outcome = "updated"
    blocked = customer.blocked or customer.archived
    if blocked and tenant.is_active:
        tenants.tenant_suspend(tenant=tenant, reason=BLOCKED_REASON)
        outcome = "suspended"
    elif not blocked and not tenant.is_active and tenant.suspension_reason == BLOCKED_REASON:
        tenants.tenant_reactivate(tenant=tenant)
        outcome = "reactivated"
    return outcome


@transaction.atomic
def customer_delete(*, customer_uuid: UUID) -> str:
    """Waldur deleted the customer: suspend the tenant, archive its projects, revoke
    every key. The rows stay (billing history points at them)."""
    tenant = AgentTenant.all_objects.filter(waldur_customer_uuid=customer_uuid).first()
    if tenant is None:
        return "unchanged"
    changed = False
    if tenant.is_active:
        tenants.tenant_suspend(tenant=tenant, reason=DELETED_REASON)
        changed = True
    for project in AgentProject.objects.filter(tenant=tenant, is_active=True):
        tenants.project_update(project=project, is_active=False)
        changed = True
    changed |= _revoke(AgentAccess.objects.filter(tenant=tenant))
    return "deleted" if changed else "unchanged"


# --- Projects -------------------------------------------------------------------------


@transaction.atomic
def project_mirror(*, project: WaldurProject) -> str:
    if project.is_removed:
        return project_delete(project_uuid=project.uuid)
    tenant = AgentTenant.all_objects.filter(waldur_customer_uuid=project.customer_uuid).first()
    if tenant is None:
        raise WaldurNotFound(f"project {project.uuid}: its customer is not mirrored yet")
    row = AgentProject.all_objects.filter(waldur_project_uuid=project.uuid).first()
    name = project.name[:200]
    if row is None:
        tenants.project_create(
            tenant=tenant,
            name=_free_project_name(tenant, name),
            waldur_project_uuid=project.uuid,
            waldur_project_name=name,
        )
        return "created"
    fields: dict[str, object] = {}
    if row.waldur_project_name != name:
        fields["waldur_project_name"] = name
        if row.name != name:
            fields["name"] = _free_project_name(tenant, name, keep=row)
    if not row.is_active:
        fields["is_active"] = True
    if not fields:
        return "unchanged"
    tenants.project_update(project=row, **fields)
    return "updated"


def _free_project_name(tenant: AgentTenant, name: str, *, keep: AgentProject | None = None) -> str:
    taken = AgentProject.objects.filter(tenant=tenant)
    if keep is not None:
        taken = taken.exclude(pk=keep.pk)
    candidate, n = name, 1
    while taken.filter(name=candidate).exists():
        n += 1
        candidate = f"{name[:190]} ({n})"
    return candidate


@transaction.atomic
def project_delete(*, project_uuid: UUID) -> str:
    """Waldur deleted (or is deleting) the project: archive it and revoke its keys."""
    row = AgentProject.all_objects.filter(waldur_project_uuid=project_uuid).first()
    if row is None:
        return "unchanged"
    changed = False
    if row.is_active:
        tenants.project_update(project=row, is_active=False)
        changed = True
    changed |= _revoke(AgentAccess.objects.filter(project=row))
    return "archived" if changed else "unchanged"


def _revoke(accesses) -> bool:
    live = list(accesses.exclude(status=AccessStatus.REVOKED))
    for access in live:
        access_revoke(access=access, reason=REVOKED_REASON)
    return bool(live)


# --- Roles ----------------------------------------------------------------------------


@transaction.atomic
def roles_mirror(*, customer_uuid: UUID, roles: list[WaldurRole]) -> str:
    """Give the registry's users their Waldur roles in the tenant; take back the roles
    the sync gave earlier that Waldur no longer grants. Unknown users are skipped."""
    tenant = AgentTenant.objects.filter(waldur_customer_uuid=customer_uuid).first()
    if tenant is None:
        return "unchanged"
    wanted: dict[str, TenantRole] = {}
    for waldur_role in roles:
        mapped = role_for(waldur_role)
        if mapped is not None and user_by_username(waldur_role.username) is not None:
            wanted[waldur_role.username.lower()] = mapped
    changed = False
    # Owners first, so demoting the previous owner never leaves the tenant without one.
    for username, role in sorted(wanted.items(), key=lambda kv: -ROLE_RANK[kv[1]]):
        user = user_by_username(username)
        current = TenantMembership.objects.filter(tenant=tenant, user=user).first()
        if current is None or current.role != role:
            tenants.membership_set(tenant=tenant, username=user.get_username(), role=role)
            changed = True
        WaldurRoleGrant.objects.update_or_create(
            tenant=tenant, username=username, defaults={"role": role}
        )
    for grant in WaldurRoleGrant.objects.filter(tenant=tenant).exclude(username__in=wanted):
        user = user_by_username(grant.username)
        membership: TenantMembership | TenantInvitation | None = (
            TenantMembership.objects.filter(tenant=tenant, user=user).first() if user else None
        )
        if membership is not None:
            tenants.membership_remove(membership=membership)
            changed = True
        grant.delete()
    return "updated" if changed else "unchanged"


# --- By uuid (a hook's hint) and all at once (the reconcile) ----------------------------


def customer_refresh(*, client: WaldurClient, customer_uuid: UUID) -> str:
    """Re-read one customer (and its roles); gone in Waldur → deleted here."""
    try:
        customer = client.customer(customer_uuid)
    except WaldurNotFound:
        return customer_delete(customer_uuid=customer_uuid)
    outcome = customer_mirror(customer=customer)
    roles_mirror(customer_uuid=customer.uuid, roles=client.customer_roles(customer.uuid))
    return outcome


def project_refresh(*, client: WaldurClient, project_uuid: UUID) -> str:
    try:
        project = client.project(project_uuid)
    except WaldurNotFound:
        return project_delete(project_uuid=project_uuid)
    if not AgentTenant.all_objects.filter(waldur_customer_uuid=project.customer_uuid).exists():
        customer_refresh(client=client, customer_uuid=project.customer_uuid)
    return project_mirror(project=project)


class SyncResult(CountedRun):
    def count(self, what: str, outcome: str) -> None:
        self.tally(f"{what}_{outcome}")


def sync_all(*, client: WaldurClient, progress=None) -> SyncResult:
    """Mirror every customer, project and role; record the run (WaldurSyncRun).

    A listing that fails stops the run (nothing is deleted on a partial view); one
    object that fails is recorded and the others go on.
    """
    run = WaldurSyncRun.objects.create()
    result = SyncResult()
    try:
        customers = client.customers()
        projects = client.projects()
    except WaldurError as exc:
        result.errors.append(f"listing: {exc}")
        _finish(run, result)
        return result
    say = progress or (lambda line: None)
    seen_customers = {c.uuid for c in customers}
    for customer in customers:
        _step(result, "customer", lambda c=customer: customer_mirror(customer=c), say)
        _step(result, "roles", lambda c=customer: _roles_refresh(client, c.uuid), say)
    gone = AgentTenant.all_objects.exclude(waldur_customer_uuid=None).exclude(
        waldur_customer_uuid__in=seen_customers
    )
    for uuid in gone.values_list("waldur_customer_uuid", flat=True):
        _step(result, "customer", lambda u=uuid: customer_delete(customer_uuid=u), say)
    seen_projects = {p.uuid for p in projects}
    for project in projects:
        _step(result, "project", lambda p=project: project_mirror(project=p), say)
    gone_projects = AgentProject.all_objects.exclude(waldur_project_uuid=None).exclude(
        waldur_project_uuid__in=seen_projects
    )
    for uuid in gone_projects.values_list("waldur_project_uuid", flat=True):
        _step(result, "project", lambda u=uuid: project_delete(project_uuid=u), say)
    _finish(run, result)
    return result


def _roles_refresh(client: WaldurClient, customer_uuid: UUID) -> str:
    return roles_mirror(customer_uuid=customer_uuid, roles=client.customer_roles(customer_uuid))


def _step(result: SyncResult, what: str, do, say) -> None:
    try:
        outcome = do()
    except (WaldurError, RegistryError) as exc:
        result.errors.append(f"{what}: {exc}")
        result.count(what, "failed")
        logger.warning("waldur sync: %s failed: %s", what, exc)
        say(f"{what}: failed: {exc}")
        return
    result.count(what, outcome)
    if outcome != "unchanged":
        say(f"{what}: {outcome}")


def _finish(run: WaldurSyncRun, result: SyncResult) -> None:
    run.finished_at = timezone.now()
    run.ok = result.ok
    run.counts = result.counts
    run.errors = result.errors[:200]
    run.save()
