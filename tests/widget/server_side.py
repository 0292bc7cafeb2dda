"""Helpers of the widget's server-side tests (widget keys, sessions, tokens).

Plain functions, not fixtures: the widget's browser tests (another suite in this
folder) keep their own conftest.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_registry.access.services import IssuedAccess, configuration_update
from agent_registry.widget.models import WidgetKey
from agent_registry.widget.services import widget_key_create
from tests import factories

SHOP = "https://shop.example.com"
DOMAINS = [SHOP, "*.example.org", "http://localhost:3000"]


@dataclass
class WidgetSubscription:
    issued: IssuedAccess
    key: WidgetKey

    @property
    def access(self):
        return self.issued.access


def widget_subscription(
    *,
    agent_id: str = "echo",
    domains: list[str] | None = None,
    enabled: bool = True,
    runtime=None,
    **plan,
) -> WidgetSubscription:
    """An active agent's subscription (echo, or ``runtime``) with its widget switched on
    for ``domains`` and one widget key."""
    plan.setdefault("monthly_quota", 100)
    plan.setdefault("rate_limit_per_second", 1000)
    agent_fields = {"runtime": runtime} if runtime is not None else {}
    agent = factories.make_agent(agent_id=agent_id, max_concurrent_requests=50, **agent_fields)
    issued = factories.make_subscription(project=factories.ProjectFactory(), agent=agent, **plan)
    configuration_update(
        configuration=issued.access.configuration,
        widget_enabled=enabled,
        allowed_domains=DOMAINS if domains is None else domains,
        branding_name="Shop helper",
        widget_theme={"primary_color": "#123456", "evil": "red;background:url(x)"},
        system_prompt_override="You are secret-prompt-text.",
    )
    return WidgetSubscription(issued=issued, key=widget_key_create(access=issued.access))
