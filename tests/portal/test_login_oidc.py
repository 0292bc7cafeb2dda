"""Keycloak login for the portal maps ``sub`` to the account the API's bearer JWTs use."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from agent_registry.core.authentication import OIDCAuthentication
from agent_registry.portal.oidc import PortalOIDCBackend
from agent_registry.tenants.models import TenantRole
from agent_registry.tenants.services import membership_set
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def backend(settings) -> PortalOIDCBackend:
    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_RP_CLIENT_SECRET = "s3cret"
    settings.OIDC_OP_TOKEN_ENDPOINT = "https://keycloak.example/token"
    settings.OIDC_OP_USER_ENDPOINT = "https://keycloak.example/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = "https://keycloak.example/certs"
    return PortalOIDCBackend()


def test_the_subject_names_the_same_user_as_the_apis_bearer_tokens(backend, tenant):
    factories.member(tenant, "developer", username="kc-7f3a")

    user = backend.get_or_create_user("access", "id", {"sub": "kc-7f3a", "email": "a@x.io"})

    assert user == OIDCAuthentication._user_for({"sub": "kc-7f3a"})
    assert user.tenant_memberships.get().tenant == tenant


def test_a_new_subject_gets_an_account_without_a_password(backend):
    user = backend.get_or_create_user("access", "id", {"sub": "kc-new"})

    assert user.username == "kc-new"
    assert not user.has_usable_password()


def test_a_subject_naming_a_local_account_is_refused(backend):
    local = get_user_model().objects.create_user("demo-customer", password="pw-123-long-x")

    assert backend.get_or_create_user("access", "id", {"sub": local.username}) is None
    assert backend.get_or_create_user("access", "id", {"sub": " "}) is None


def test_the_login_page_offers_keycloak_only_when_configured(client, settings):
    settings.PORTAL_OIDC_ENABLED = False

    html = client.get("/portal/login/").content.decode()

    assert "Log in with Keycloak" not in html
    assert '<label for="id_username">Username' in html


def test_a_first_keycloak_login_takes_up_the_invitation_waiting_for_its_name(backend, tenant):
    membership_set(tenant=tenant, username="kc-invited", role=TenantRole.DEVELOPER)

    user = backend.get_or_create_user("access", "id", {"sub": "kc-invited"})

    assert user.tenant_memberships.get().role == TenantRole.DEVELOPER
