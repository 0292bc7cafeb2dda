"""The organisation's members and their roles; owners invite, change roles and remove."""

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
from agent_registry.tenants.permissions import require_role


def _tenant(request: HttpRequest) -> AgentTenant:
    tenant = current_tenant(request)
    if tenant is None:
        raise NotFound("You are not a member of any organisation yet.")
    return tenant


@login_required
@shows_errors
def team(request: HttpRequest) -> HttpResponse:
    """GET lists the members (any role may read them, as in the API); POST sets a
    member's role or invites a name without an account yet (owners only)."""
    tenant = _tenant(request)
    form = MemberForm(request.POST if request.method == "POST" else None)
    context = {
        "tenant": tenant,
        "form": form,
        "may_manage": holds_role(request.user, tenant, TenantRole.OWNER),
    }
    if request.method == "POST":
        require_role(request.user, tenant, TenantRole.OWNER)
        if form.is_valid():
            try:
                services.membership_set(tenant=tenant, **form.cleaned_data)
            except RegistryError as error:
                context["error_lines"] = error_lines(error)
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
                "joined": isinstance(row, TenantMembership),
            }
            for row in selectors.members_of(tenant)
        ],
    )
    status = 400 if request.method == "POST" else 200
    return page(request, "portal/team.html", context, status=status)


@login_required
@shows_errors
def team_remove(request: HttpRequest, username: str) -> HttpResponse:
    """GET asks for confirmation; POST removes (owners only, as in the API)."""
    tenant = _tenant(request)
    require_role(request.user, tenant, TenantRole.OWNER)
    member = selectors.member_named(tenant, username)
    if request.method == "POST":
        services.membership_remove(membership=member)
        messages.success(request, f"{username} is no longer a member of {tenant.name}.")
        return redirect("portal:team")
    return page(request, "portal/confirm_remove.html", {"tenant": tenant, "username": username})
