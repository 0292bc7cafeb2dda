"""How management-API callers prove who they are.

- Operators and scripts: ``Authorization: Token <agrop_…>`` (see ``issue_token``).
- Members: ``Authorization: Bearer <JWT>`` from Keycloak, verified against the JWKS at
  ``OIDC_JWKS_URL``; the token's ``sub`` is the username that memberships name.
"""

from __future__ import annotations

import json
import time

import jwt
import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework import authentication, exceptions

from agent_registry.core import keys
from agent_registry.core.identifiers import user_get_or_create
from agent_registry.core.models import OperatorToken

log = structlog.get_logger(__name__)


class OperatorTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Token <token>'.")
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        parsed = keys.parse_key(plaintext, keys.OPERATOR_TOKEN_KIND)
        if parsed is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        token = (
            OperatorToken.objects.select_related("user")
            .filter(token_prefix=parsed.prefix, revoked_at__isnull=True)
            .first()
        )
        if token is None or not keys.key_matches(plaintext, token.token_hash):
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


class OIDCAuthentication(authentication.BaseAuthentication):
    """Bearer JWTs signed by the identity provider (Keycloak), checked against its JWKS."""

    keyword = "Bearer"
    _jwk_clients: dict[str, jwt.PyJWKClient] = {}

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        if not settings.OIDC_JWKS_URL:
            raise exceptions.AuthenticationFailed("OIDC login is not configured here.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid bearer token.") from None
        claims = self._verify(token)
        return self._user_for(claims), claims

    def authenticate_header(self, request):
        return self.keyword

    def _verify(self, token: str) -> dict:
        try:
            signing_key = self._signing_key(token)
            options = {"require": ["exp", "iat", "sub"], "verify_aud": bool(settings.OIDC_AUDIENCE)}
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=settings.OIDC_ALGORITHMS,
                audience=settings.OIDC_AUDIENCE or None,
                issuer=settings.OIDC_ISSUER or None,
                options=options,  # type: ignore[arg-type]  # a plain dict of PyJWT options
                leeway=30,
            )
        except (jwt.PyJWKClientConnectionError, json.JSONDecodeError) as exc:
            # JSONDecodeError can only come from the key set: the token's own parts are
            # parsed by PyJWT, which reports them as DecodeError.
            log.warning("oidc_jwks_unreachable", error=str(exc)[:200])
            raise exceptions.AuthenticationFailed(
                "The identity provider's keys could not be fetched; try again shortly."
            ) from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise exceptions.AuthenticationFailed(f"Invalid bearer token: {exc}") from None
        # Keycloak signs ID tokens (typ "ID") with the same key; only access tokens
        # (typ "Bearer") are credentials for this API. Other providers may omit ``typ``.
        if str(claims.get("typ", "Bearer")).lower() != "bearer":
            raise exceptions.AuthenticationFailed("Invalid bearer token: not an access token.")
        if not str(claims["sub"]).strip():
            raise exceptions.AuthenticationFailed("Invalid bearer token: no subject.")
        return claims

    @classmethod
    def _signing_key(cls, token: str):
        url = settings.OIDC_JWKS_URL
        client = cls._jwk_clients.get(url)
        if client is None:
            # The key set is cached for ``lifespan`` seconds and then fetched again, so a
            # key the provider retired stops being trusted. No per-kid cache
            # (``cache_keys``): it never expires and would trust a retired key for good.
            client = jwt.PyJWKClient(
                url, cache_keys=False, lifespan=300, timeout=settings.OIDC_HTTP_TIMEOUT_SECONDS
            )
            cls._jwk_clients[url] = client
        # Bounded retries with backoff for a flaky identity provider.
        for attempt in range(3):
            try:
                return client.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientConnectionError:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (2**attempt))
        raise AssertionError("unreachable")

    @staticmethod
    def _user_for(claims: dict):
        subject = str(claims["sub"])[:150]
        try:
            user, _ = user_get_or_create(subject, email=str(claims.get("email", ""))[:254])
        except ValidationError:
            message = "The token's subject is not a valid name."
            raise exceptions.AuthenticationFailed(message) from None
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        # A token's subject may only stand for an identity-provider user: never for a
        # local account (a password login, or an operator made by issue_token).
        if user.is_staff or user.has_usable_password():
            log.warning("oidc_subject_matches_local_account", subject=subject)
            raise exceptions.AuthenticationFailed(
                "This identity belongs to a local account; log in with its token instead."
            )
        return user
