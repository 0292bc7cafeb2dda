"""Identifiers are unique ignoring case and, like display names, hold no invisible text."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from agent_registry.agents.models import AgentInstance
from agent_registry.core.identifiers import (
    invisible_characters,
    refuse_invisible,
    user_get_or_create,
)
from agent_registry.tenants.models import AgentTenant
from tests import factories

REFUSED = {
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "word joiner": "\u2060",
    "no-break space": "\u00a0",
    "ideographic space": "\u3000",
    "hangul filler": "\u3164",
    "line separator": "\u2028",
    "tab": "\t",
    "escape": "\x1b",
}


@pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
def test_invisible_and_direction_changing_characters_are_refused(char):
    with pytest.raises(ValidationError) as refused:
        refuse_invisible(f"acme{char}corp")

    assert f"U+{ord(char):04X}" in refused.value.messages[0]


@pytest.mark.parametrize("text", ["Zoë Café", "日本語の名前", "Robot 🤖", "O'Brien-Smith & Co."])
def test_visible_text_in_any_script_is_accepted(text):
    refuse_invisible(text)

    assert invisible_characters(text) == []


@pytest.mark.django_db
def test_usernames_are_unique_ignoring_case_in_the_database():
    get_user_model().objects.create(username="alice")

    with pytest.raises(IntegrityError), transaction.atomic():
        get_user_model().objects.create(username="ALICE")


@pytest.mark.django_db
def test_tenant_slugs_and_agent_ids_are_unique_ignoring_case_in_the_database():
    agent = factories.make_agent(agent_id="helper")
    AgentTenant.objects.create(name="Globex", slug="globex")

    with pytest.raises(IntegrityError), transaction.atomic():
        AgentTenant.objects.create(name="Globex 2", slug="GloBex")
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentInstance.objects.create(agent_id="HELPER", name="Shadow", project=agent.project)


@pytest.mark.django_db
def test_every_path_that_makes_users_finds_an_existing_one_ignoring_case(capsys):
    existing = factories.UserFactory(username="operator")

    found, created = user_get_or_create("OPERATOR")
    call_command("issue_token", "Operator")

    assert (found, created) == (existing, False)
    assert get_user_model().objects.filter(username__iexact="operator").count() == 1


@pytest.mark.django_db
def test_a_username_with_invisible_characters_is_never_created():
    with pytest.raises(CommandError):
        call_command("issue_token", "ops\u202e")
    with pytest.raises(ValidationError):
        user_get_or_create("o\u200bps")

    assert not get_user_model().objects.exists()
