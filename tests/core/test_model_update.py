"""core/services.py ``model_update``: the one "allowed fields, then set them" of the services."""

from __future__ import annotations

import pytest

from agent_registry.core.services import model_update
from agent_registry.tenants.models import AgentTenant


def test_it_sets_the_allowed_fields_and_names_those_that_changed():
    tenant = AgentTenant(name="Acme", slug="acme", max_agents=5)

    changed = model_update(
        tenant, {"name": "Acme Inc", "max_agents": 5}, allowed=("name", "max_agents")
    )

    assert tenant.name == "Acme Inc"
    assert changed == ["name"]


def test_a_field_outside_the_allowed_ones_is_a_programming_error_and_nothing_is_set():
    tenant = AgentTenant(name="Acme", slug="acme")

    with pytest.raises(ValueError, match=r"Not writable fields of AgentTenant: \['slug'\]"):
        model_update(tenant, {"name": "Other", "slug": "other"}, allowed=("name",))
    assert (tenant.name, tenant.slug) == ("Acme", "acme")
