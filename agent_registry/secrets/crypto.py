"""Encryption at rest of runtime secret values (``cryptography``'s Fernet).

Keys come from ``RUNTIME_SECRETS_KEYS``: comma-separated Fernet keys, the first one
encrypts, all of them decrypt (``MultiFernet``), so a key is rotated by putting a new
one first, running ``manage.py rotate_runtime_secret_keys`` (re-encrypts every row under
the first key) and then dropping the old one. Without keys (the embedded default) one
key is derived from ``SECRET_KEY``; production refuses to start that way (checks.py).

The plaintext binds the value to its tenant and name, so a token copied into another
tenant's row (by someone who can write the database) does not decrypt there.
"""

from __future__ import annotations

import base64
import functools
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from agent_registry.secrets.errors import SecretUnreadable


def configured_keys() -> list[str]:
    keys = settings.RUNTIME_SECRETS_KEYS
    if isinstance(keys, str):
        keys = keys.split(",")
    return [key.strip() for key in keys if key.strip()]


def key_problems() -> list[str]:
    """What is wrong with ``RUNTIME_SECRETS_KEYS`` (never the keys themselves)."""
    problems = []
    for position, key in enumerate(configured_keys(), start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(f"key #{position} is not a Fernet key (32 url-safe base64 bytes)")
    return problems


def development_key(secret_key: str) -> str:
    """A Fernet key derived from ``SECRET_KEY`` (for the embedded default only)."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"agent-registry runtime-secrets v1"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived).decode()


@functools.lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    keys = tuple(configured_keys()) or (development_key(settings.SECRET_KEY),)
    return _multi_fernet(keys)


def encrypt(tenant_id: str, name: str, value: str) -> str:
    plaintext = json.dumps({"t": str(tenant_id), "n": name, "v": value}, separators=(",", ":"))
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(tenant_id: str, name: str, token: str) -> str:
    try:
        data = json.loads(fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable("no configured key decrypts this secret") from exc
    if not isinstance(data, dict) or data.get("t") != str(tenant_id) or data.get("n") != name:
        raise SecretUnreadable("the stored secret belongs to another tenant or name")
    value = data.get("v")
    if not isinstance(value, str):
        raise SecretUnreadable("the stored secret is malformed")
    return value


def rotate(token: str) -> str:
    """The same value, encrypted under the first configured key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("no configured key decrypts this secret") from exc
