"""Who may call the management API: operator tokens and Keycloak (OIDC) bearer JWTs.

The OIDC tests run the real verifier (PyJWT's ``PyJWKClient``) against a fake Keycloak
that serves its key set over HTTP on loopback (``tests/fakes/keycloak.py``).
"""

from __future__ import annotations

import io
import time
import uuid
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from jwt import api_jwk, jwk_set_cache, jwks_client
from rest_framework.test import APIClient

from agent_registry.core import keys
from agent_registry.core.authentication import OIDCAuthentication
from agent_registry.core.models import OperatorToken
from agent_registry.tenants.models import AgentTenant
from tests import factories
from tests.fakes.keycloak import (
    FakeKeycloak,
    SigningKey,
    hs256_token,
    token_with_header,
    unsigned_token,
)

WHO_AM_I = "/api/v1/tenants/"  # any authenticated caller may list (their) tenants

IDP_DOWN_MESSAGE = "The identity provider's keys could not be fetched; try again shortly."


def token_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def bearer_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_refused(response, code: str = "authentication_failed") -> dict:
    """401 in the error envelope, with a challenge; returns the error body."""
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"]
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response["X-Request-ID"]
    assert error["message"]
    return error


# --- Operator tokens -------------------------------------------------------------------


def test_a_valid_operator_token_authenticates_its_user(db):
    operator = factories.UserFactory(username="ops", is_staff=True)
    factories.TenantFactory(slug="acme")

    response = token_client(factories.token_for(operator)).get(WHO_AM_I)

    assert response.status_code == 200
    assert [t["slug"] for t in response.json()["results"]] == ["acme"]


def test_a_token_with_the_wrong_secret_is_refused(db):
    token = factories.token_for(factories.UserFactory())
    # Same lookup part, one secret character changed, checksum recomputed: it passes the
    # shape check and reaches the database, where the stored HMAC does not match.
    head = token[: -keys.CHECKSUM_LENGTH]
    tampered_head = head[:-1] + ("A" if head[-1] != "A" else "B")
    tampered = tampered_head + keys._checksum(tampered_head)
    assert keys.parse_key(tampered, keys.OPERATOR_TOKEN_KIND) is not None

    response = token_client(tampered).get(WHO_AM_I)

    assert assert_refused(response)["message"] == "Invalid token."


def test_a_token_with_a_bad_checksum_is_refused_without_touching_the_database(
    db, django_assert_num_queries
):
    token = factories.token_for(factories.UserFactory())
    mistyped = token[:-1] + ("x" if token[-1] != "x" else "y")
    client = token_client(mistyped)

    with django_assert_num_queries(0):
        response = client.get(WHO_AM_I)

    assert assert_refused(response)["message"] == "Invalid token."


def test_an_unknown_token_gets_the_same_answer_as_a_wrong_secret(db):
    unknown = keys.issue_key(keys.OPERATOR_TOKEN_KIND).plaintext

    response = token_client(unknown).get(WHO_AM_I)

    assert assert_refused(response)["message"] == "Invalid token."


def test_a_revoked_token_is_refused(db):
    user = factories.UserFactory(is_staff=True)
    token = factories.token_for(user)
    OperatorToken.objects.filter(user=user).update(revoked_at=timezone.now())

    response = token_client(token).get(WHO_AM_I)

    assert_refused(response)


def test_the_token_of_a_deactivated_user_is_refused(db):
    user = factories.UserFactory(is_staff=True)
    token = factories.token_for(user)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)

    response = token_client(token).get(WHO_AM_I)

    assert assert_refused(response)["message"] == "User inactive."


@pytest.mark.parametrize(
    "header",
    ["Token", "Token a b", "Token agr_notanoperatortoken", "Token \u00e9t\u00e9"],
    ids=["no-token", "two-tokens", "an-api-key", "non-ascii"],
)
def test_a_malformed_token_header_is_refused(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(WHO_AM_I)

    assert_refused(response)


def test_no_credentials_at_all_is_401_with_a_challenge(db):
    response = APIClient().get(WHO_AM_I)

    assert_refused(response, code="not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_an_unknown_authorization_scheme_counts_as_no_credentials(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic b3BzOnNlY3JldA==")

    response = client.get(WHO_AM_I)

    assert_refused(response, code="not_authenticated")


def test_issue_token_prints_one_line_that_works_as_an_operator_token(db):
    out = io.StringIO()

    call_command("issue_token", "ops-bot", "--staff", stdout=out)

    [token] = out.getvalue().splitlines()
    user = get_user_model().objects.get(username="ops-bot")
    assert user.is_staff
    assert not user.has_usable_password()
    response = token_client(token).post(
        "/api/v1/tenants/", {"name": "Globex", "slug": "globex"}, format="json"
    )
    assert response.status_code == 201
    assert OperatorToken.objects.get(user=user).token_hash == keys.hash_key(token)


def test_issue_token_without_staff_makes_a_plain_user_who_is_no_operator(db):
    out = io.StringIO()

    call_command("issue_token", "script", stdout=out)

    client = token_client(out.getvalue().strip())
    assert client.get(WHO_AM_I).json()["results"] == []
    refused = client.post("/api/v1/tenants/", {"name": "G", "slug": "g"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert not AgentTenant.objects.exists()


def test_issue_token_again_adds_a_token_and_the_first_keeps_working(db):
    first, second = io.StringIO(), io.StringIO()

    call_command("issue_token", "ops", "--staff", stdout=first)
    call_command("issue_token", "ops", stdout=second)

    assert first.getvalue() != second.getvalue()
    assert get_user_model().objects.get(username="ops").is_staff  # no --staff doesn't demote
    for out in (first, second):
        assert token_client(out.getvalue().strip()).get(WHO_AM_I).status_code == 200


# --- OIDC (Keycloak) -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_jwks_clients():
    """``OIDCAuthentication`` keeps one JWKS client per URL for the process; not across tests."""
    OIDCAuthentication._jwk_clients.clear()
    yield
    OIDCAuthentication._jwk_clients.clear()


@pytest.fixture
def keycloak(settings):
    with FakeKeycloak() as idp:
        settings.OIDC_JWKS_URL = idp.jwks_url
        settings.OIDC_ISSUER = idp.issuer
        settings.OIDC_AUDIENCE = idp.audience
        yield idp


class Clock:
    """A monotonic clock that tests can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def jwks_clock(monkeypatch) -> Clock:
    """Time as PyJWT's key-set cache and refresh cooldown see it."""
    clock = Clock()
    fake_time = SimpleNamespace(monotonic=clock.monotonic)
    for module in (jwks_client, jwk_set_cache, api_jwk):
        monkeypatch.setattr(module, "time", fake_time)
    return clock


def test_a_valid_keycloak_token_logs_in_its_subject_creating_the_user(db, keycloak):
    subject = str(uuid.uuid4())
    token = keycloak.mint(sub=subject, username="alice", email="alice@acme.example")

    response = bearer_client(token).get(WHO_AM_I)

    assert response.status_code == 200
    user = get_user_model().objects.get(username=subject)
    assert user.email == "alice@acme.example"
    assert not user.has_usable_password()
    assert not user.is_staff


def test_a_member_granted_by_subject_before_first_login_sees_their_tenant_only(db, keycloak):
    subject = str(uuid.uuid4())
    acme = factories.TenantFactory(slug="acme")
    factories.TenantFactory(slug="globex")
    factories.member(acme, "developer", username=subject)

    response = bearer_client(keycloak.mint(sub=subject)).get(WHO_AM_I)

    assert response.status_code == 200
    assert [t["slug"] for t in response.json()["results"]] == ["acme"]


def test_an_invitation_by_subject_is_a_membership_from_the_first_login_on(db, keycloak):
    from agent_registry.tenants.models import TenantRole
    from agent_registry.tenants.services import membership_set

    subject = str(uuid.uuid4())
    acme = factories.TenantFactory(slug="acme")
    factories.TenantFactory(slug="globex")
    membership_set(tenant=acme, username=subject.upper(), role=TenantRole.DEVELOPER)
    assert not get_user_model().objects.exists()  # the grant made no account

    response = bearer_client(keycloak.mint(sub=subject)).get(WHO_AM_I)

    assert response.status_code == 200
    assert [t["slug"] for t in response.json()["results"]] == ["acme"]


def test_a_subject_with_invisible_characters_is_refused(db, keycloak):
    response = bearer_client(keycloak.mint(sub="alice\u202e")).get(WHO_AM_I)

    assert response.status_code == 401
    assert not get_user_model().objects.exists()


def test_the_same_subject_is_the_same_user_and_the_key_set_is_fetched_once(db, keycloak):
    subject = str(uuid.uuid4())

    responses = [bearer_client(keycloak.mint(sub=subject)).get(WHO_AM_I) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert get_user_model().objects.filter(username=subject).count() == 1
    assert keycloak.jwks_requests == 1


def test_an_audience_list_that_contains_ours_is_accepted(db, keycloak):
    token = keycloak.mint(aud=["account", keycloak.audience])

    assert bearer_client(token).get(WHO_AM_I).status_code == 200


def test_an_expired_token_is_refused(db, keycloak):
    token = keycloak.mint(iat=int(time.time()) - 3600, exp=int(time.time()) - 600)

    error = assert_refused(bearer_client(token).get(WHO_AM_I))

    assert "expired" in error["message"]


def test_a_token_from_another_issuer_is_refused(db, keycloak):
    token = keycloak.mint(iss="http://127.0.0.1:1/realms/other")

    error = assert_refused(bearer_client(token).get(WHO_AM_I))

    assert "issuer" in error["message"].lower()


def test_a_token_for_another_audience_is_refused(db, keycloak):
    token = keycloak.mint(aud="some-other-client")

    error = assert_refused(bearer_client(token).get(WHO_AM_I))

    assert "audience" in error["message"].lower()


def test_a_token_signed_by_another_key_under_the_realms_kid_is_refused(db, keycloak):
    impostor = SigningKey.generate()
    token = keycloak.mint(key=impostor, kid=keycloak.signing_key.kid)

    error = assert_refused(bearer_client(token).get(WHO_AM_I))

    assert "signature" in error["message"].lower()


def test_an_unknown_kid_is_refused_without_hammering_the_identity_provider(db, keycloak):
    stranger = SigningKey.generate()

    responses = [bearer_client(keycloak.mint(key=stranger)).get(WHO_AM_I) for _ in range(5)]

    for response in responses:
        assert_refused(response)
    assert keycloak.jwks_requests == 1


def test_an_unsigned_alg_none_token_is_refused(db, keycloak):
    token = unsigned_token(keycloak.claims(), kid=keycloak.signing_key.kid)

    assert_refused(bearer_client(token).get(WHO_AM_I))
    assert not get_user_model().objects.exists()


def test_an_hs256_token_keyed_with_the_realms_public_key_is_refused(db, keycloak):
    key = keycloak.signing_key
    token = hs256_token(keycloak.claims(), secret=key.public_pem(), kid=key.kid)

    error = assert_refused(bearer_client(token).get(WHO_AM_I))

    assert "alg" in error["message"].lower()
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize(
    "kid", [["a", "list"], {"an": "object"}, 42, None], ids=["list", "object", "number", "null"]
)
def test_a_kid_that_is_not_a_string_is_refused_not_crashed(db, keycloak, kid):
    token = token_with_header(keycloak.claims(), keycloak.signing_key, {"kid": kid})

    assert_refused(bearer_client(token).get(WHO_AM_I))


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "agr_" + "A" * 48, "e30.e30."],
    ids=["garbage", "three-garbage-parts", "an-api-key", "empty-json-parts"],
)
def test_a_bearer_value_that_is_no_jwt_is_refused(db, keycloak, token):
    assert_refused(bearer_client(token).get(WHO_AM_I))


def test_an_id_token_is_not_accepted_as_an_access_token(db, keycloak):
    token = keycloak.mint(typ="ID", aud=keycloak.audience)

    assert_refused(bearer_client(token).get(WHO_AM_I))


@pytest.mark.parametrize("subject", ["", None], ids=["empty", "missing"])
def test_a_token_without_a_subject_is_refused(db, keycloak, subject):
    claims = keycloak.claims()
    if subject is None:
        del claims["sub"]
    else:
        claims["sub"] = subject
    token = token_with_header(claims, keycloak.signing_key, {"kid": keycloak.signing_key.kid})

    assert_refused(bearer_client(token).get(WHO_AM_I))
    assert not get_user_model().objects.exists()


def test_a_deactivated_users_token_is_refused(db, keycloak):
    subject = str(uuid.uuid4())
    factories.UserFactory(username=subject, is_active=False)

    error = assert_refused(bearer_client(keycloak.mint(sub=subject)).get(WHO_AM_I))

    assert error["message"] == "User inactive."


def test_bearer_tokens_are_refused_when_oidc_is_not_configured(db, keycloak, settings):
    settings.OIDC_JWKS_URL = ""

    error = assert_refused(bearer_client(keycloak.mint()).get(WHO_AM_I))

    assert error["message"] == "OIDC login is not configured here."
    assert keycloak.jwks_requests == 0


@pytest.mark.parametrize("mode", ["refused", "error", "garbage"])
def test_an_unreachable_identity_provider_is_401_with_a_clear_message_not_500(db, keycloak, mode):
    token = keycloak.mint()
    keycloak.down(mode)

    error = assert_refused(bearer_client(token).get(WHO_AM_I))

    assert error["message"] == IDP_DOWN_MESSAGE
    assert not get_user_model().objects.exists()


def test_a_failing_key_fetch_is_retried_a_bounded_number_of_times(db, keycloak):
    keycloak.down("error")

    assert_refused(bearer_client(keycloak.mint()).get(WHO_AM_I))

    assert keycloak.jwks_requests == 3


def test_a_cached_key_set_keeps_logins_working_while_the_provider_is_down(db, keycloak):
    subject = str(uuid.uuid4())
    assert bearer_client(keycloak.mint(sub=subject)).get(WHO_AM_I).status_code == 200

    keycloak.down("refused")

    assert bearer_client(keycloak.mint(sub=subject)).get(WHO_AM_I).status_code == 200


def test_the_provider_coming_back_restores_logins(db, keycloak):
    keycloak.down("refused")
    assert_refused(bearer_client(keycloak.mint()).get(WHO_AM_I))

    keycloak.up()

    assert bearer_client(keycloak.mint()).get(WHO_AM_I).status_code == 200


def test_a_key_rotated_in_is_picked_up_once_the_refresh_cooldown_has_passed(
    db, keycloak, jwks_clock
):
    old = keycloak.signing_key
    assert bearer_client(keycloak.mint()).get(WHO_AM_I).status_code == 200
    jwks_clock.advance(31)

    new = keycloak.rotate()

    assert bearer_client(keycloak.mint(key=new)).get(WHO_AM_I).status_code == 200
    assert bearer_client(keycloak.mint(key=old)).get(WHO_AM_I).status_code == 200
    assert keycloak.jwks_requests == 2


def test_a_key_retired_by_the_provider_stops_working_when_the_cached_set_expires(
    db, keycloak, jwks_clock
):
    old = keycloak.signing_key
    assert bearer_client(keycloak.mint(key=old)).get(WHO_AM_I).status_code == 200
    keycloak.rotate()
    keycloak.retire(old)

    jwks_clock.advance(301)

    assert_refused(bearer_client(keycloak.mint(key=old)).get(WHO_AM_I))
    assert bearer_client(keycloak.mint()).get(WHO_AM_I).status_code == 200


@pytest.mark.parametrize("staff", [True, False])
def test_an_oidc_subject_cannot_take_over_a_local_account(db, keycloak, staff):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="root-ops", password="x" * 20, is_staff=staff)

    response = bearer_client(keycloak.mint(sub="root-ops")).get(WHO_AM_I)

    assert response.status_code == 401
    assert "local account" in response.json()["error"]["message"]
