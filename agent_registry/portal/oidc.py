"""Keycloak login for the portal (mozilla-django-oidc), mapped like the API's bearer JWTs.

The ID token's ``sub`` names the user exactly as ``core.authentication.OIDCAuthentication``
names it for an access token: the same account, so the same memberships and roles. The
same refusals apply too (an inactive user; a subject that names a local account).
"""

from __future__ import annotations

import structlog
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from rest_framework.exceptions import AuthenticationFailed

from agent_registry.core.authentication import OIDCAuthentication

log = structlog.get_logger(__name__)


class PortalOIDCBackend(OIDCAuthenticationBackend):
    def get_or_create_user(self, access_token, id_token, payload):
        claims = dict(payload or {})
        if not str(claims.get("sub", "")).strip():
            log.warning("portal_oidc_no_subject")
            return None
        try:
            return OIDCAuthentication._user_for(claims)
        except AuthenticationFailed as refused:
            log.warning("portal_oidc_refused", reason=str(refused.detail))
            return None
