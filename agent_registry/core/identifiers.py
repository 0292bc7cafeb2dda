"""What an identifier or a display name may contain, and how users are found by name.

Identifiers (tenant slugs, agent ids, usernames) are unique regardless of case, so
``Acme`` cannot sit beside ``acme`` and pass for it (database constraints on
``Lower(...)``; for usernames an expression index made by core's migration 0002).

Neither identifiers nor display names may hold characters that are invisible or
change how text around them is shown: Unicode format characters (category Cf: the
bidi overrides and isolates U+202A-202E and U+2066-2069, zero-width space/joiners,
the BOM, soft hyphen, …), control characters, line and paragraph separators, and
whitespace other than the plain space (no-break and other-width spaces, and the
blank "letters" such as the Hangul fillers). ``refuse_invisible`` is the one check;
models, serializers and the user-creating paths all use it.
"""

from __future__ import annotations

import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Value
from django.db.models.functions import Lower
from django.utils.deconstruct import deconstructible

_REFUSED_CATEGORIES = frozenset({"Cf", "Cc", "Co", "Cs", "Cn", "Zl", "Zp", "Zs"})
# Characters that render as nothing though their category says otherwise.
_BLANK_LOOKALIKES = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u2800\u3164\uffa0"
    "\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c"
    "\ufe0d\ufe0e\ufe0f"
)


def invisible_characters(text: str) -> list[str]:
    """The refused characters in ``text``, as ``U+XXXX`` strings (first ten)."""
    found: list[str] = []
    for char in text:
        if char == " ":
            continue
        if char in _BLANK_LOOKALIKES or unicodedata.category(char) in _REFUSED_CATEGORIES:
            code = f"U+{ord(char):04X}"
            if code not in found:
                found.append(code)
                if len(found) == 10:
                    break
    return found


@deconstructible
class NoInvisibleCharacters:
    """Django validator (models, forms, DRF serializers)."""

    message = "Must not contain invisible or formatting characters ({codes})."
    code = "invisible_characters"

    def __call__(self, value: object) -> None:
        if isinstance(value, str):
            found = invisible_characters(value)
            if found:
                raise ValidationError(self.message.format(codes=", ".join(found)), code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoInvisibleCharacters)

    def __hash__(self) -> int:
        return hash(type(self))


refuse_invisible = NoInvisibleCharacters()


def user_by_username(username: str):
    """The user whose username equals ``username`` ignoring case, or None.

    The exact spelling first (the username's unique index: every OIDC request asks), and
    only then ignoring case, through the ``LOWER(username)`` index of migration 0002.
    """
    users = get_user_model().objects
    return (
        users.filter(username=username).first()
        or users.alias(lowered=Lower("username")).filter(lowered=Lower(Value(username))).first()
    )


def user_get_or_create(username: str, *, email: str = ""):
    """Every path that makes a user goes through here: one spelling per name, no
    invisible characters. Returns ``(user, created)``; a new user has no password."""
    refuse_invisible(username)
    user = user_by_username(username)
    if user is not None:
        return user, False
    user = get_user_model()(username=username, email=email)
    user.set_unusable_password()
    user.save()
    return user, True
