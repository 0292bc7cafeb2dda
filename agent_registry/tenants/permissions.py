"""Who may see and change which tenant's data.

Operators (staff users) see everything. Members see their own tenants only; inside a
tenant, what they may change depends on their role (document 3.1):

| action                                         | viewer | developer | admin | owner |
|------------------------------------------------|:------:|:---------:|:-----:|:-----:|
| read the tenant, projects, agents, subscriptions |   ✓    |     ✓     |   ✓   |   ✓   |
| subscribe, rotate keys, edit configuration      |        |     ✓     |   ✓   |   ✓   |
| revoke keys, create projects, edit agents/plans |        |           |   ✓   |   ✓   |
| invite members, change and remove non-owners     |        |           |   ✓   |   ✓   |
| grant the owner role, change or remove an owner  |        |           |       |   ✓   |
| see its agents' usage and revenue (as provider)  |        |           |   ✓   |   ✓   |

Members: an admin invites and sets any role below owner on anyone who is not an owner
(``require_member_change``); granting the owner role, or changing or removing an owner
(or an invitation to be one), is the owners'. Every tenant keeps at least one owner
(``services._keep_an_owner``, 409 ``last_owner``).

Objects of other tenants are simply not found (404), so ids don't leak.
"""

from __future__ import annotations

from django.db.models import QuerySet

from agent_registry.core.errors import Forbidden
from agent_registry.tenants.models import ROLE_RANK, AgentTenant, TenantMembership, TenantRole

# The least role that manages members (below the owner role; see require_member_change).
MEMBERS_ROLE = TenantRole.ADMIN

# A provider's figures cover all its customers and their money: the role that sets the
# agents' prices sees them (usage/provider_selectors.py).
PROVIDER_FIGURES_ROLE = TenantRole.ADMIN


def is_operator(user) -> bool:
    return bool(user and user.is_authenticated and user.is_staff)


def member_tenant_ids(user) -> set:
    if not (user and user.is_authenticated):
        return set()
    cached = getattr(user, "_member_tenant_ids", None)
    if cached is None:
        cached = set(
            TenantMembership.objects.filter(user=user, tenant__deleted_at__isnull=True).values_list(
                "tenant_id", flat=True
            )
        )
        user._member_tenant_ids = cached
    return cached


def visible_tenants(user) -> QuerySet[AgentTenant]:
    tenants = AgentTenant.objects.all()
    if is_operator(user):
        return tenants
    return tenants.filter(id__in=member_tenant_ids(user))


def role_of(user, tenant: AgentTenant) -> str | None:
    if not (user and user.is_authenticated):
        return None
    return (
        TenantMembership.objects.filter(user=user, tenant=tenant)
        .values_list("role", flat=True)
        .first()
    )


def require_role(user, tenant: AgentTenant, minimum: TenantRole) -> None:
    """Raise 403 unless the user is an operator or holds at least ``minimum`` in the tenant."""
    if is_operator(user):
        return
    role = role_of(user, tenant)
    if role is None or ROLE_RANK[TenantRole(role)] < ROLE_RANK[minimum]:
        raise Forbidden(f"This needs the {minimum.label.lower()} role in tenant '{tenant.slug}'.")


def require_operator(user) -> None:
    if not is_operator(user):
        raise Forbidden("Only operators may do this.")


def require_member_change(
    user, tenant: AgentTenant, *, current: str | None, new: str | None
) -> None:
    """403 unless ``user`` may change a member of ``tenant`` from ``current`` to ``new``.

    ``current`` is None for a name that is neither a member nor invited yet, ``new`` is
    None for a removal. Admins manage members; the owner role, given or taken, needs an
    owner (or an operator). The API and the portal both come here, through
    ``services.membership_set`` and ``membership_remove`` (``by=``).
    """
    require_role(user, tenant, MEMBERS_ROLE)
    owners_only = TenantRole.OWNER in (current, new)
    if owners_only and not is_operator(user) and role_of(user, tenant) != TenantRole.OWNER:
        raise Forbidden(
            f"Only an owner of tenant '{tenant.slug}' may grant the owner role "
            "or change or remove an owner."
        )
