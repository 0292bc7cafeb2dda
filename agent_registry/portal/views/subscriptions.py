"""My agents: subscriptions with their keys, limits, configuration and usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from agent_registry.access import documents
from agent_registry.access import selectors as access_selectors
from agent_registry.access import services as access_services
from agent_registry.access.api.serializers import ConfigurationSerializer
from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.core.errors import NotFound, RegistryError
from agent_registry.portal.api_rules import api_checked
from agent_registry.portal.errors import error_lines, shows_errors
from agent_registry.portal.forms import ConfigurationForm, ReasonForm
from agent_registry.portal.views.catalog import key_once
from agent_registry.portal.views.common import current_tenant, holds_role, page, paginate
from agent_registry.tenants.models import TenantRole
from agent_registry.tenants.permissions import require_role
from agent_registry.tenants.selectors import projects_visible_to
from agent_registry.usage.selectors import daily_summaries_visible_to
from agent_registry.widget import selectors as widget_selectors
from agent_registry.widget import services as widget_services
from agent_registry.widget.embed import embed_snippet


def _access(request: HttpRequest, access_id) -> AgentAccess:
    """The API's lookup: another tenant's subscription is simply not found."""
    access = access_selectors.access_visible_to(request.user).filter(pk=access_id).first()
    if access is None:
        raise NotFound("No such subscription.")
    return access


@login_required
@shows_errors
def subscription_list(request: HttpRequest) -> HttpResponse:
    accesses = access_selectors.access_visible_to(request.user).order_by("-created_at")
    tenant = current_tenant(request)
    projects = projects_visible_to(request.user).none()
    if tenant is not None:
        accesses = accesses.filter(tenant=tenant)
        projects = projects_visible_to(request.user).filter(tenant=tenant).order_by("name")
    chosen = projects.filter(pk=request.GET["project"]).first() if _is_uuid(request) else None
    if chosen is not None:
        accesses = accesses.filter(project=chosen)
    listing = paginate(request, accesses)
    access_selectors.accesses_with_quota_shown(listing.object_list)
    return page(
        request,
        "portal/subscriptions.html",
        {
            "listing": listing,
            "projects": projects,
            "chosen_project": chosen,
            "paid_access": _returned_from_checkout(request),
            "returned_from_checkout": "session_id" in request.GET,
        },
    )


def _returned_from_checkout(request: HttpRequest) -> AgentAccess | None:
    """The subscription Stripe Checkout sent the customer back about (its success URL
    carries ``session_id``), if it is one the user sees; its status says whether the
    payment has been confirmed yet (Stripe's webhook does that, not this page)."""
    session_id = request.GET.get("session_id", "")[:255]
    if not session_id:
        return None
    return (
        access_selectors.access_visible_to(request.user)
        .filter(stripe_subscription__checkout_session_id=session_id)
        .first()
    )


def _is_uuid(request: HttpRequest) -> bool:
    try:
        uuid.UUID(request.GET.get("project", ""))
    except ValueError:
        return False
    return True


def _detail(request: HttpRequest, access: AgentAccess, **extra) -> HttpResponse:
    status = extra.pop("status", 200)
    access = access_selectors.access_with_quota_shown(access)
    since = datetime.now(UTC).date() - timedelta(days=30)
    usage = (
        daily_summaries_visible_to(request.user)
        .filter(access=access, date__gte=since)
        .order_by("-date")
    )
    widget_keys = list(widget_selectors.widget_keys_of(access))
    active_keys = [key for key in widget_keys if key.is_active]
    # The newest active key's tag, as the API's embed code gives it by default.
    snippet = (
        embed_snippet(active_keys[0])
        if active_keys and access.status != AccessStatus.REVOKED
        else ""
    )
    context = {
        "access": access,
        "usage": usage,
        "form": extra.pop("form", None) or ConfigurationForm(instance=access.configuration),
        "snippet": snippet,
        "widget_keys": widget_keys,
        "documents": paginate(
            request,
            access.training_documents.select_related("uploaded_by").order_by("-created_at", "pk"),
            param="documents_page",
        ),
        "document_accept": documents.accept_attribute(),
        "may_edit_documents": holds_role(request.user, access.tenant, TenantRole.DEVELOPER),
        "document_max_bytes": settings.TRAINING_DOCUMENT_MAX_BYTES,
    }
    return page(request, "portal/subscription_detail.html", context | extra, status=status)


@login_required
@shows_errors
def subscription_detail(request: HttpRequest, access_id) -> HttpResponse:
    return _detail(request, _access(request, access_id))


@login_required
@require_POST
@shows_errors
def subscription_rotate(request: HttpRequest, access_id) -> HttpResponse:
    access = _access(request, access_id)
    require_role(request.user, access.tenant, TenantRole.DEVELOPER)
    issued = access_services.access_key_rotate(access=access)
    return key_once(request, issued.access, issued.api_key, created=False)


@login_required
@shows_errors
def subscription_revoke(request: HttpRequest, access_id) -> HttpResponse:
    """GET asks for confirmation; POST revokes (the admin role, as in the API)."""
    access = _access(request, access_id)
    require_role(request.user, access.tenant, TenantRole.ADMIN)
    form = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        access_services.access_revoke(access=access, reason=form.cleaned_data["reason"])
        messages.success(request, "The subscription is revoked; its key no longer works.")
        return redirect("portal:subscription", access_id=access.pk)
    status = 400 if request.method == "POST" else 200  # the reason, said beside its field
    return page(
        request, "portal/confirm_revoke.html", {"access": access, "form": form}, status=status
    )


@login_required
@require_POST
@shows_errors
def subscription_new_key(request: HttpRequest, access_id) -> HttpResponse:
    """A revoked subscription's "Create key": the same project subscribes to the same
    plan again, through the API's subscribe checks and ``access_create``."""
    access = _access(request, access_id)
    target = access_selectors.subscription_target(
        request.user,
        project_id=access.project_id,
        agent_id=access.agent_instance.agent_id,
        plan_id=access.plan_id,
    )
    issued = access_services.access_create(
        agent=target.agent,
        plan=target.plan,
        project=target.project,
        name=access.name,
        actor=request.user,
    )
    return key_once(request, issued.access, issued.api_key, created=True)


@login_required
@require_POST
@shows_errors
def subscription_configure(request: HttpRequest, access_id) -> HttpResponse:
    access = _access(request, access_id)
    require_role(request.user, access.tenant, TenantRole.DEVELOPER)
    form = ConfigurationForm(request.POST, instance=access.configuration)
    if not form.is_valid():
        return _detail(request, access, form=form, status=400)
    try:
        fields = api_checked(
            ConfigurationSerializer,
            form.service_fields(),
            instance=access.configuration,
            partial=True,
        )
        access_services.configuration_update(configuration=access.configuration, **fields)
    except RegistryError as error:
        return _detail(
            request,
            _access(request, access_id),
            form=form,
            error_lines=error_lines(error),
            status=error.status,
        )
    messages.success(request, "Configuration saved.")
    return redirect("portal:subscription", access_id=access.pk)


# --- Widget keys (issue 14): the same services as the API -----------------------------


@login_required
@require_POST
@shows_errors
def widget_key_create(request: HttpRequest, access_id) -> HttpResponse:
    access = _access(request, access_id)
    require_role(request.user, access.tenant, TenantRole.DEVELOPER)
    name = request.POST.get("name", "")[:100]
    key = widget_services.widget_key_create(access=access, name=name, actor=request.user)
    messages.success(request, f"Widget key {key.key} created; the embed code names it.")
    return redirect("portal:subscription", access_id=access.pk)


@login_required
@require_POST
@shows_errors
def widget_key_revoke(request: HttpRequest, access_id, key_id) -> HttpResponse:
    access = _access(request, access_id)
    require_role(request.user, access.tenant, TenantRole.DEVELOPER)
    key = widget_selectors.widget_keys_of(access).filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such widget key.")
    widget_services.widget_key_revoke(widget_key=key)
    messages.success(request, f"Widget key {key.key} revoked; it starts no more sessions.")
    return redirect("portal:subscription", access_id=access.pk)
