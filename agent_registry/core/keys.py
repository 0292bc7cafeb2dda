"""Secret keys that scanners can spot, typos can't reach the database, and a leak can't replay.

A key reads ``<kind>_<lookup><secret><checksum>``:

- ``kind`` — a fixed, recognisable prefix (``agr`` for API keys, ``agrop`` for operator
  tokens) so secret scanners can match it;
- ``lookup`` — 12 base62 characters (~71 bits), the indexed, public part; ``<kind>_<lookup>``
  is the ``key_prefix`` shown in lists and logs;
- ``secret`` — 30 base62 characters (~178 bits) from ``secrets``;
- ``checksum`` — CRC32 of everything before it, 6 base62 characters, so a mistyped key
  is refused without a database lookup.

Only ``HMAC-SHA256(pepper, key)`` is stored, and comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass, field

from django.conf import settings

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LOOKUP_LENGTH = 12
SECRET_LENGTH = 30
CHECKSUM_LENGTH = 6
SECRET_BITS = SECRET_LENGTH * 5.954  # log2(62) bits per character

API_KEY_KIND = "agr"
OPERATOR_TOKEN_KIND = "agrop"

_BODY_LENGTH = LOOKUP_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH
_KEY_PATTERN = re.compile(rf"^([a-z]{{2,8}})_([0-9A-Za-z]{{{_BODY_LENGTH}}})$")


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key: ``plaintext`` is shown once and then forgotten."""

    plaintext: str
    prefix: str
    hash: str


@dataclass(frozen=True)
class ParsedKey:
    kind: str
    prefix: str
    text: str = field(repr=False)  # the whole key, as checked; never in a repr or a log


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode("ascii")), CHECKSUM_LENGTH)


def _random_chars(count: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(count))


def hash_key(plaintext: str) -> str:
    pepper = settings.API_KEY_PEPPER.encode("utf-8")
    return hmac.new(pepper, plaintext.encode("utf-8"), hashlib.sha256).hexdigest()


def issue_key(kind: str = API_KEY_KIND) -> IssuedKey:
    lookup = _random_chars(LOOKUP_LENGTH)
    head = f"{kind}_{lookup}{_random_chars(SECRET_LENGTH)}"
    plaintext = head + _checksum(head)
    return IssuedKey(plaintext=plaintext, prefix=f"{kind}_{lookup}", hash=hash_key(plaintext))


def parse_key(candidate: str | None, kind: str = API_KEY_KIND) -> ParsedKey | None:
    """Check shape and checksum only; ``None`` means "not a key of ours", no lookup needed."""
    if not candidate or len(candidate) > 64:
        return None
    match = _KEY_PATTERN.match(candidate)
    if match is None or match.group(1) != kind:
        return None
    head, checksum = candidate[:-CHECKSUM_LENGTH], candidate[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(head), checksum):
        return None
    return ParsedKey(kind=kind, prefix=f"{kind}_{match.group(2)[:LOOKUP_LENGTH]}", text=candidate)


def hash_in_force(
    prefix: str,
    *,
    current_prefix: str,
    current_hash: str,
    previous_prefix: str | None,
    previous_hash: str,
    previous_expires_at: float | None,
    now: float,
) -> str | None:
    """The stored hash a key with ``prefix`` must match: the current key's, or the
    previous key's while its rotation grace lasts (epoch seconds); None otherwise.

    The one rule for the database check (access/selectors.py) and the gateway's cached
    snapshot (gateway/snapshots.py).
    """
    if prefix == current_prefix:
        return current_hash
    if prefix == previous_prefix and previous_expires_at is not None and now < previous_expires_at:
        return previous_hash
    return None


def key_matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), stored_hash)
