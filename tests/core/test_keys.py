"""API keys and operator tokens: format, entropy, checksum, hashing."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from agent_registry.core import keys


def test_a_key_has_a_recognisable_prefix_a_lookup_part_a_secret_and_a_checksum():
    issued = keys.issue_key()

    assert re.fullmatch(r"agr_[0-9A-Za-z]{48}", issued.plaintext)
    assert issued.prefix == issued.plaintext[:16]
    assert issued.prefix.startswith("agr_")


def test_the_secret_part_carries_at_least_160_bits():
    assert keys.SECRET_BITS >= 160


def test_keys_do_not_repeat():
    made = {keys.issue_key().plaintext for _ in range(2000)}
    prefixes = {key[:16] for key in made}

    assert len(made) == 2000
    assert len(prefixes) == 2000


def test_only_a_peppered_hmac_is_stored_never_the_key():
    issued = keys.issue_key()

    assert issued.plaintext not in issued.hash
    assert re.fullmatch(r"[0-9a-f]{64}", issued.hash)
    assert keys.key_matches(issued.plaintext, issued.hash)
    with override_settings(API_KEY_PEPPER="another-pepper"):
        assert not keys.key_matches(issued.plaintext, issued.hash)


def test_a_well_formed_key_parses_to_its_prefix():
    issued = keys.issue_key()

    parsed = keys.parse_key(issued.plaintext)

    assert parsed is not None
    assert parsed.prefix == issued.prefix


@pytest.mark.parametrize("position", [4, 10, 20, 40, 50])
def test_a_single_typo_anywhere_fails_the_checksum(position):
    plaintext = keys.issue_key().plaintext
    replacement = "A" if plaintext[position] != "A" else "B"
    typo = plaintext[:position] + replacement + plaintext[position + 1 :]

    assert keys.parse_key(typo) is None


def test_swapped_neighbours_fail_the_checksum():
    plaintext = keys.issue_key().plaintext
    i = next(i for i in range(10, 40) if plaintext[i] != plaintext[i + 1])
    swapped = plaintext[:i] + plaintext[i + 1] + plaintext[i] + plaintext[i + 2 :]

    assert keys.parse_key(swapped) is None


@pytest.mark.parametrize(
    "candidate",
    [
        None,
        "",
        "agr_",
        "agr_short",
        "sk-live-abcdef",
        "agr_" + "A" * 48,
        "agr_" + "A" * 200,
        "AGR_" + "A" * 48,
        " agr_" + "A" * 47,
    ],
)
def test_malformed_keys_are_refused_without_a_lookup(candidate):
    assert keys.parse_key(candidate) is None


def test_an_operator_token_is_not_an_api_key_and_vice_versa():
    token = keys.issue_key(keys.OPERATOR_TOKEN_KIND).plaintext
    api_key = keys.issue_key(keys.API_KEY_KIND).plaintext

    assert token.startswith("agrop_")
    assert keys.parse_key(token, keys.API_KEY_KIND) is None
    assert keys.parse_key(api_key, keys.OPERATOR_TOKEN_KIND) is None
    assert keys.parse_key(token, keys.OPERATOR_TOKEN_KIND) is not None


def test_comparison_is_constant_time(monkeypatch):
    calls = []
    real = keys.hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    issued = keys.issue_key()

    keys.key_matches(issued.plaintext, issued.hash)

    assert calls, "hash comparison must go through hmac.compare_digest"
