"""The embedded demo: seeded once, with a metered demo key so the money path shows money."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from agent_registry.access.models import AgentAccess
from agent_registry.agents.models import AgentPlan, BillingModel
from agent_registry.demo.management.commands import seed_demo

pytestmark = pytest.mark.django_db


@pytest.fixture
def credentials(tmp_path, monkeypatch):
    path = tmp_path / "demo-credentials.txt"
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", path)
    # Not var/demo.env: that one is `make run`'s, and two workers would write it at once.
    monkeypatch.setattr(seed_demo, "SHELL_FILE", tmp_path / "demo.env")
    return path


def test_the_demo_is_seeded_once_with_its_plans_and_a_metered_key(credentials):
    first, second = StringIO(), StringIO()

    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)

    assert "Demo data created." in first.getvalue()
    assert "already present" in second.getvalue()
    plans = {
        plan.name: plan.billing_model
        for plan in AgentPlan.objects.filter(agent__agent_id="echo-demo")
    }
    assert plans == {
        "Free": BillingModel.FREE,
        "Pay as you go": BillingModel.USAGE,
        "Pro": BillingModel.SUBSCRIPTION,
    }
    demo = AgentAccess.objects.get(name="Demo key")
    assert demo.plan.billing_model == BillingModel.USAGE
    saved = dict(line.split("=", 1) for line in credentials.read_text().splitlines())
    assert saved["DEMO_SUBSCRIPTION_ID"] == str(demo.pk)
    assert saved["DEMO_API_KEY"].startswith("agr_")
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"


def test_the_demo_has_a_customer_and_a_provider_login_for_the_portal(credentials, client):
    call_command("seed_demo", stdout=StringIO())

    values = dict(line.split("=", 1) for line in credentials.read_text().splitlines())
    for prefix, page in (("CUSTOMER", "/portal/subscriptions/"), ("PROVIDER", "/portal/provider/")):
        assert client.login(
            username=values[f"{prefix}_USERNAME"], password=values[f"{prefix}_PASSWORD"]
        )
        assert client.get(page).status_code == 200
    assert "Echo demo agent" in client.get("/portal/provider/").content.decode()
