"""Widget session tokens: signed, bound, short-lived (widget/tokens.py)."""

from __future__ import annotations

import pytest

from agent_registry.widget import tokens
from agent_registry.widget.errors import WidgetTokenExpired, WidgetTokenInvalid

CLAIMS = tokens.WidgetClaims(
    widget_key_id="k1",
    access_id="a1",
    agent_id="echo",
    origin="https://shop.example.com",
    visitor_id="visitor-1",
    issued_at=1_000,
    expires_at=1_900,
)


def test_a_token_verifies_to_its_claims_until_it_expires():
    token = tokens.token_issue(CLAIMS)

    assert token.startswith("agwt.")
    assert tokens.token_verify(token, now=1_899) == CLAIMS
    with pytest.raises(WidgetTokenExpired):
        tokens.token_verify(token, now=1_900)


def test_an_expired_token_with_a_bad_signature_is_invalid_not_expired():
    token = tokens.token_issue(CLAIMS)

    with pytest.raises(WidgetTokenInvalid):
        tokens.token_verify(token[:-1] + ("A" if token[-1] != "A" else "B"), now=5_000)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace("agwt.", "agwx."),
        lambda t: t + "x",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t.split(".")[0] + "." + t.split(".")[2],
        lambda t: "agwt." + "." * 3,
        lambda t: "agwt.%%%.%%%",
        lambda t: "agwt." + "A" * 5000,
        lambda t: "",
    ],
)
def test_mangled_tokens_are_invalid(mangle):
    with pytest.raises(WidgetTokenInvalid):
        tokens.token_verify(mangle(tokens.token_issue(CLAIMS)), now=1_000)


def test_a_token_signed_with_another_secret_is_invalid(settings):
    token = tokens.token_issue(CLAIMS)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40

    with pytest.raises(WidgetTokenInvalid):
        tokens.token_verify(token, now=1_000)


def test_a_rotated_secret_still_verifies_open_sessions(settings):
    old = settings.SECRET_KEY
    token = tokens.token_issue(CLAIMS)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "new-secret-" + "y" * 40, [old]

    assert tokens.token_verify(token, now=1_000) == CLAIMS


def test_the_signing_key_is_not_the_secret_key_itself(settings):
    # A token signed with SECRET_KEY by another Django feature (plain HMAC) is refused.
    import base64
    import hashlib
    import hmac

    token = tokens.token_issue(CLAIMS)
    signed = token.rsplit(".", 1)[0]
    plain = hmac.new(settings.SECRET_KEY.encode(), signed.encode(), hashlib.sha256).digest()
    forged = signed + "." + base64.urlsafe_b64encode(plain).rstrip(b"=").decode()

    with pytest.raises(WidgetTokenInvalid):
        tokens.token_verify(forged, now=1_000)
