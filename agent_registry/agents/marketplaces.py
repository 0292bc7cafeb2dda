"""Marketplaces that sell the registry's agents, told about the agents' lifecycle.

The agents app knows no marketplace: an app above it (``waldur``) registers one from
its ``AppConfig.ready``, so agents never imports it (the layers in pyproject). With
none registered, or none ``enabled()``, publishing is purely local.

Two ways in, decided by what a failure should do:

- ``listing_publish(agent)`` — synchronous, inside ``agent_run_action("publish")``
  while the agent's row is locked: the agent becomes LISTED only if every enabled
  marketplace lists it. A failure raises ``core.errors.UpstreamFailed`` (502
  ``upstream_error``); the publish is rolled back and the error recorded on the agent
  (``details["error"]`` if the marketplace gives one, else the message).
- ``listing_sync(agent_pk)`` — best effort, after the commit of any other action
  (pause, resume, retire) or edit of a published agent or its plans: bring the
  listing in step with the agent as it is now. It records its own failures on the
  agent and never raises, so Waldur being down never blocks a pause or a retire; a
  marketplace's periodic repair pass catches up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from django.db import transaction

if TYPE_CHECKING:
    from agent_registry.agents.models import AgentInstance


class Marketplace(Protocol):
    name: str

    def enabled(self) -> bool:
        """Configured now (read at each call: settings can change, in tests)."""
        ...

    def listing_publish(self, agent: AgentInstance) -> None:
        """List the agent (create or update its offering, make it orderable);
        raise ``UpstreamFailed`` when that cannot be done now."""
        ...

    def listing_sync(self, agent_pk: str) -> None:
        """Bring the agent's listing in step with the agent; never raise."""
        ...


_registered: dict[str, Marketplace] = {}


def register(marketplace: Marketplace) -> None:
    """Called from an app's ``ready``; registering a name again replaces it."""
    _registered[marketplace.name] = marketplace


def enabled() -> list[Marketplace]:
    return [m for m in _registered.values() if m.enabled()]


def sync_after_commit(agent_pk: str) -> None:
    """After the current transaction commits, each enabled marketplace's listing of the
    agent catches up with it (best effort: failures are recorded on the agent)."""

    def run() -> None:
        for marketplace in enabled():
            marketplace.listing_sync(agent_pk)

    # robust: the commit is done and answered for; a bug here is logged, not raised.
    transaction.on_commit(run, robust=True)
