"""The organisation's members and their roles. Admins and owners invite, change roles
and remove; the owner role itself (given or taken) is the owners'. Both rules are the
API's: ``tenants.permissions.require_member_change``, applied by the services (``by=``)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from agent_registry.core.errors import NotFound, RegistryError
from agent_registry.portal.errors import error_lines, shows_errors
from agent_registry.portal.forms import MemberForm
from agent_registry.portal.views.common import current_tenant, holds_role, page, paginate
from agent_registry.tenants import selectors, services
from agent_registry.tenants.models import AgentTenant, TenantMembership, TenantRole
from agent_registry.tenants.permissions import (
    MEMBERS_ROLE,
    require_member_change,
    require_role,
)


def _tenant(request: HttpRequest) -> AgentTenant:
    tenant = current_tenant(request)
    if tenant is None:
        raise NotFound("You are not a member of any organisation yet.")
    return tenant


def _prefill(tenant: AgentTenant, name: str) -> dict[str, str] | None:
    """The form's initial values for "Change role" of ``name`` (a member or invitation)."""
    try:
        member = selectors.member_named(tenant, name)
    except NotFound:
        return None
    username = member.user.username if isinstance(member, TenantMembership) else member.username
    return {"username": username, "role": member.role}


@login_required
@shows_errors
def team(request: HttpRequest) -> HttpResponse:
    """GET lists the members (any role may read them, as in the API); POST sets a
    member's role or invites a name without an account yet (admins and owners)."""
    tenant = _tenant(request)
    is_owner = holds_role(request.user, tenant, TenantRole.OWNER)
    asked_for = request.GET.get("member", "")[:150]
    initial = _prefill(tenant, asked_for) if request.method == "GET" and asked_for else None
    form = MemberForm(
        request.POST if request.method == "POST" else None,
        # The least role unless a member's "Change role" asked for theirs.
        initial=initial or {"role": TenantRole.VIEWER},
        owner=is_owner,
    )
    context = {
        "tenant": tenant,
        "form": form,
        "may_manage": holds_role(request.user, tenant, MEMBERS_ROLE),
        "is_owner": is_owner,
    }
    status = 200
    if request.method == "POST":
        require_role(request.user, tenant, MEMBERS_ROLE)
        status = 400
        if form.is_valid():
            try:
                services.membership_set(tenant=tenant, **form.cleaned_data, by=request.user)
            except RegistryError as error:
                context["error_lines"] = error_lines(error)
                status = error.status
            else:
                messages.success(
                    request, f"{form.cleaned_data['username']} is now {form.cleaned_data['role']}."
                )
                return redirect("portal:team")
    context["members"] = paginate(
        request,
        [
            {
                "name": row.user.username if isinstance(row, TenantMembership) else row.username,
                "role": row.get_role_display(),
                # Controls are offered where the rule would allow them (owners only
                # touch an owner); the service decides either way.
                "manageable": is_owner or row.role != TenantRole.OWNER,
                "joined": isinstance(row, TenantMembership),
            }
            for row in selectors.members_of(tenant)
        ],
    )
    return page(request, "portal/team.html", context, status=status)


@login_required
@shows_errors
def team_remove(request: HttpRequest, username: str) -> HttpResponse:
    """GET asks for confirmation; POST removes (admins and owners; an owner only by an
    owner, and never the last one, as in the API)."""
    tenant = _tenant(request)
    require_role(request.user, tenant, MEMBERS_ROLE)
    member = selectors.member_named(tenant, username)
    # Not asked to confirm what would be refused: the same rule the service applies.
    require_member_change(request.user, tenant, current=member.role, new=None)
    if request.method == "POST":
        services.membership_remove(membership=member, by=request.user)
        messages.success(request, f"{username} is no longer a member of {tenant.name}.")
        return redirect("portal:team")
    return page(request, "portal/confirm_remove.html", {"tenant": tenant, "username": username})
