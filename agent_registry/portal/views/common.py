"""What every portal page shares: the organisation switcher, pagination, rendering."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agent_registry.core.errors import Forbidden
from agent_registry.tenants.models import AgentTenant, TenantRole
from agent_registry.tenants.permissions import require_role, role_of, visible_tenants

PAGE_SIZE = 20
SESSION_TENANT = "portal_tenant"


def current_tenant(request: HttpRequest) -> AgentTenant | None:
    """The organisation the user chose in the switcher (else their first): always one
    of ``visible_tenants`` — the API's scoping, so a stale or forged choice shows nothing."""
    tenants = visible_tenants(request.user).order_by("name")
    chosen = request.session.get(SESSION_TENANT)
    if chosen:
        tenant = tenants.filter(slug=chosen).first()
        if tenant is not None:
            return tenant
    return tenants.first()


def holds_role(user, tenant: AgentTenant, minimum: TenantRole) -> bool:
    """Whether to offer a control: the question ``require_role`` answers when it is used."""
    try:
        require_role(user, tenant, minimum)
    except Forbidden:
        return False
    return True


def paginate(
    request: HttpRequest, items: Any, size: int | None = None, param: str = "page"
) -> Page:
    """One page of ``items`` (``PAGE_SIZE`` unless told), chosen by the query's ``param``
    (a page with two lists gives each its own); a page number that is not one is the
    first or last page."""
    page = Paginator(items, size or PAGE_SIZE).get_page(request.GET.get(param))
    page.param = param  # type: ignore[attr-defined]  # the pager's links
    return page


def page(
    request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    user = request.user
    tenant = current_tenant(request) if user.is_authenticated else None
    shared = {
        "tenants": list(visible_tenants(user).order_by("name")) if user.is_authenticated else [],
        "current_tenant": tenant,
        "current_role": role_of(user, tenant) if tenant is not None else None,
    }
    return render(request, template, shared | context, status=status)
