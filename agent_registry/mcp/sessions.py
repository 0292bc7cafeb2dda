"""The proxy's session ids: the upstream's ``Mcp-Session-Id``, sealed to one subscription.

A client never sees the upstream's own session id. It gets that id encrypted and
authenticated (AES-GCM) together with its subscription and agent, so

* no state is kept here: any worker process can serve any request of a session, and
  there is nothing to leak or leave stuck when a client vanishes;
* a session id copied to another key (another subscriber of the same server) does not
  open there: the registry injects one credential for all subscribers, so the upstream
  could not tell them apart, and a borrowed session must be refused here.

The key is derived from ``SECRET_KEY`` (HKDF, its own label), so rotating that secret
ends open sessions; clients then initialize again, as the protocol has them do on 404.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

NONCE_BYTES = 12
# The spec allows visible ASCII of any length; an upstream id longer than this is refused
# rather than sealed (a client must echo it in a header on every request).
MAX_UPSTREAM_SESSION_ID = 512


@functools.lru_cache(maxsize=4)
def _aead(secret_key: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"agent-registry mcp session id"
    ).derive(secret_key.encode())
    return AESGCM(key)


def _bound_to(access_id: str, agent_id: str) -> bytes:
    return f"{access_id}|{agent_id}".encode()


def seal(upstream_session_id: str, *, access_id: str, agent_id: str) -> str | None:
    """The client's session id for the upstream's; None for an id not fit to carry."""
    raw = upstream_session_id.encode("ascii", "replace")
    if not raw or len(raw) > MAX_UPSTREAM_SESSION_ID or not upstream_session_id.isprintable():
        return None
    nonce = os.urandom(NONCE_BYTES)
    sealed = _aead(settings.SECRET_KEY).encrypt(nonce, raw, _bound_to(access_id, agent_id))
    return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def unseal(client_session_id: str, *, access_id: str, agent_id: str) -> str | None:
    """The upstream's session id, if ``client_session_id`` was sealed for this
    subscription and agent; None for anything else (a guess, another key's, garbage)."""
    if len(client_session_id) > 2 * MAX_UPSTREAM_SESSION_ID:
        return None
    try:
        padded = client_session_id + "=" * (-len(client_session_id) % 4)
        blob = base64.urlsafe_b64decode(padded.encode("ascii"))
        if len(blob) <= NONCE_BYTES:
            return None
        raw = _aead(settings.SECRET_KEY).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], _bound_to(access_id, agent_id)
        )
    except (InvalidTag, ValueError, binascii.Error, UnicodeEncodeError):
        return None
    return raw.decode("ascii", "replace")
