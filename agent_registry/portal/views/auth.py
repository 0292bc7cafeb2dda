"""Logging in and out (local accounts; Keycloak when configured), and the organisation switcher."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from agent_registry.portal.views.common import SESSION_TENANT
from agent_registry.tenants.permissions import visible_tenants


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs) | {"oidc_enabled": settings.PORTAL_OIDC_ENABLED}


class LogoutView(auth_views.LogoutView):
    """POST only (Django's rule): a link or an image can't log anyone out."""

    next_page = "portal:login"


@login_required
@require_POST
def switch_tenant(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("tenant", "")
    if visible_tenants(request.user).filter(slug=slug).exists():
        request.session[SESSION_TENANT] = slug
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = resolve_url("portal:marketplace")
    return HttpResponseRedirect(target)
