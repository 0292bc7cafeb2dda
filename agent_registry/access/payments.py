"""Who takes the payment when a customer subscribes to a paid plan.

The access app knows no payment provider: an app above it (billing's Stripe channel)
registers one from its ``AppConfig.ready``, so access never imports it (the layers in
pyproject), as agents/marketplaces.py does for marketplaces. With none registered, or
none ``enabled()``, a paid plan is sold through Waldur or by an operator only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent_registry.access.models import AgentAccess
    from agent_registry.agents.models import AgentInstance, AgentPlan
    from agent_registry.tenants.models import AgentProject


@dataclass(frozen=True)
class CheckoutStarted:
    """A subscription waiting for its first payment, its key (shown once) and where
    the customer pays."""

    access: AgentAccess
    api_key: str
    checkout_url: str
    session_id: str


class PaymentProvider(Protocol):
    name: str

    def enabled(self) -> bool:
        """Configured now (read at each call: settings can change, in tests)."""
        ...

    def checkout_start(
        self,
        *,
        agent: AgentInstance,
        plan: AgentPlan,
        project: AgentProject,
        name: str,
        actor,
        email: str,
    ) -> CheckoutStarted:
        """Create the pending subscription and the payment page; raise a
        ``RegistryError`` (nothing created) when that cannot be done now."""
        ...


_registered: dict[str, PaymentProvider] = {}


def register(provider: PaymentProvider) -> None:
    """Called from an app's ``ready``; registering a name again replaces it."""
    _registered[provider.name] = provider


def provider() -> PaymentProvider | None:
    """The first enabled provider, or ``None``: paid plans cannot be bought here."""
    return next((p for p in _registered.values() if p.enabled()), None)
