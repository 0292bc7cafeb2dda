"""Widget session tokens: short-lived, signed, bound to one widget key, origin and visitor.

``agwt.<payload>.<signature>``: the payload is base64url JSON
``{"v", "k" (widget key id), "a" (subscription id), "ag" (agent_id), "o" (origin),
"vis" (visitor id), "iat", "exp"}`` (epoch seconds), the signature base64url
HMAC-SHA256 over ``agwt.<payload>`` with a key derived from ``SECRET_KEY`` for this
purpose alone (``SECRET_KEY_FALLBACKS`` still verify, so a key rotation does not cut
open sessions). Verification checks the signature in constant time first, and only
then reads the payload; expiry is its own error so the widget can renew once.

Pure and fast: the gateway verifies a token on every widget call without I/O.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import salted_hmac

from agent_registry.widget.errors import WidgetTokenExpired, WidgetTokenInvalid

PREFIX = "agwt."
VERSION = 1
_SALT = "agent_registry.widget.session-token.v1"
MAX_TOKEN_CHARS = 2048


@dataclass(frozen=True, slots=True)
class WidgetClaims:
    widget_key_id: str
    access_id: str
    agent_id: str
    origin: str
    visitor_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(signed: str, secret: str) -> bytes:
    return salted_hmac(_SALT, signed, secret=secret, algorithm="sha256").digest()


def looks_like_token(credential: str) -> bool:
    """A widget token rather than an API key (decides which check the gateway runs)."""
    return credential.startswith(PREFIX)


def token_issue(claims: WidgetClaims) -> str:
    payload = {
        "v": VERSION,
        "k": claims.widget_key_id,
        "a": claims.access_id,
        "ag": claims.agent_id,
        "o": claims.origin,
        "vis": claims.visitor_id,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = PREFIX + body
    return f"{signed}.{_b64(_signature(signed, settings.SECRET_KEY))}"


def token_verify(token: str | None, *, now: float | None = None) -> WidgetClaims:
    """The token's claims; WidgetTokenInvalid or (signature good, time up) WidgetTokenExpired."""
    claims = token_claims(token)
    if (time.time() if now is None else now) >= claims.expires_at:
        raise WidgetTokenExpired()
    return claims


def token_claims(token: str | None) -> WidgetClaims:
    """The claims of a token whose signature holds, expired or not (WidgetTokenInvalid)."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX):
        raise WidgetTokenInvalid()
    signed, dot, signature_text = token.rpartition(".")
    if not dot or signed.count(".") != 1:
        raise WidgetTokenInvalid()
    try:
        signature = _unb64(signature_text)
    except (binascii.Error, ValueError):
        raise WidgetTokenInvalid() from None
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    # Every candidate is computed and compared, so timing says nothing about which matched.
    valid = False
    for secret in secrets:
        valid |= hmac.compare_digest(_signature(signed, secret), signature)
    if not valid:
        raise WidgetTokenInvalid()
    try:
        data = json.loads(_unb64(signed[len(PREFIX) :]))
        claims = WidgetClaims(
            widget_key_id=str(data["k"]),
            access_id=str(data["a"]),
            agent_id=str(data["ag"]),
            origin=str(data["o"]),
            visitor_id=str(data["vis"]),
            issued_at=int(data["iat"]),
            expires_at=int(data["exp"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):  # signed by us: never expected
        raise WidgetTokenInvalid() from None
    if data.get("v") != VERSION:
        raise WidgetTokenInvalid()
    return claims
