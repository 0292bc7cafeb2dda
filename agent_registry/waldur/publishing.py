"""Publishing agents as Waldur offerings, and keeping each offering in step.

One offering per agent, found by its ``backend_id`` (the agent's ``agent_id``): made
the first time, updated ever after (``offerings.offering_changes``: only the
differences are sent), never a second one. Its state follows the agent's:

==========================  ==========================================================
agent                       offering
==========================  ==========================================================
LISTED, ACTIVE              Active (made if missing; Draft → ``activate``, Paused →
                            ``unpause``)
PAUSED                      Paused (``pause`` with a ``paused_reason``)
RETIRED                     Archived (never made for a retired agent)
DRAFT, DEPLOYED             left alone (a publish that failed half-way may have left
                            a Draft offering: the next publish takes it over)
==========================  ==========================================================

``WaldurMarketplace`` is the registry's marketplace hook (agents/marketplaces.py),
registered in ``WaldurConfig.ready``: ``listing_publish`` runs inside the publish and
turns a Waldur failure into 502 ``upstream_error``; ``listing_sync`` runs after pause,
resume, retire and edits, and only records a failure on the agent. ``offerings_repair``
(the ``waldur-offerings`` job) brings every published or retired agent's offering in
step, so whatever a failure left behind is repaired within one period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from agent_registry.agents import lifecycle
from agent_registry.agents.models import AgentInstance, AgentState
from agent_registry.agents.selectors import transitions_of
from agent_registry.agents.services import agent_listing_record
from agent_registry.core.errors import UpstreamFailed
from agent_registry.core.runs import CountedRun
from agent_registry.waldur import offerings
from agent_registry.waldur.client import (
    OFFERING_ACTIVE,
    OFFERING_ARCHIVED,
    OFFERING_PAUSED,
    WaldurClient,
    WaldurOffering,
    client_from_settings,
    enabled,
)
from agent_registry.waldur.errors import WaldurError, WaldurNotFound, WaldurPermanent

logger = logging.getLogger(__name__)

DEFAULT_PAUSED_REASON = "The provider has paused this agent."
# Best-effort follow-ups (after pause, resume, retire, edits) try fewer times than a
# publish: the agent is already changed, and the repair pass tries again.
FOLLOW_UP_ATTEMPTS = 2
ERROR_PREFIX = "error: "


def _target(agent: AgentInstance) -> str | None:
    """The offering state the agent's state calls for (None: leave it alone)."""
    if agent.state in (AgentState.LISTED, AgentState.ACTIVE):
        return OFFERING_ACTIVE
    if agent.state == AgentState.PAUSED:
        return OFFERING_PAUSED
    if agent.state == AgentState.RETIRED:
        return OFFERING_ARCHIVED
    return None


def _hex(setting: str) -> str:
    value = getattr(settings, setting, "")
    try:
        return UUID(str(value)).hex
    except ValueError as exc:
        raise WaldurPermanent(f"{setting} is not set to a Waldur uuid") from exc


def _api_url(path: str) -> str:
    return f"{settings.WALDUR_API_URL.rstrip('/')}/api/{path}/"


def category_url() -> str:
    return _api_url(f"marketplace-categories/{_hex('WALDUR_CATEGORY_UUID')}")


def provider_customer_url() -> str:
    return _api_url(f"customers/{_hex('WALDUR_PROVIDER_CUSTOMER_UUID')}")


@dataclass(frozen=True, slots=True)
class Listing:
    """Where the agent's offering ended: its uuid and state, and the Waldur plan of
    each of the agent's plans (AgentPlan id → Waldur plan uuid)."""

    offering_uuid: UUID | None
    state: str | None
    plan_uuids: dict[str, UUID] = field(default_factory=dict)
    calls: tuple[str, ...] = ()


# --- Finding the offering -------------------------------------------------------------


def offering_find(agent: AgentInstance, *, client: WaldurClient) -> WaldurOffering | None:
    """The agent's offering: by the uuid the registry remembers, else by ``backend_id``
    among the provider's offerings (a live one before an archived one)."""
    if agent.waldur_offering_uuid:
        try:
            offering = client.offering(agent.waldur_offering_uuid)
        except WaldurNotFound:
            offering = None
        if offering is not None and offering.backend_id == agent.agent_id:
            return offering
    customer = UUID(_hex("WALDUR_PROVIDER_CUSTOMER_UUID"))
    found = [o for o in client.offerings(customer_uuid=customer) if o.backend_id == agent.agent_id]
    if not found:
        return None
    return min(found, key=lambda o: o.state == OFFERING_ARCHIVED)


def offering_payload_for(agent: AgentInstance) -> dict:
    """The create body for the agent's offering, from the settings."""
    try:
        return offerings.offering_payload(
            agent,
            category_url=category_url(),
            provider_customer_url=provider_customer_url(),
            offering_type=settings.WALDUR_OFFERING_TYPE,
            public_base_url=settings.PUBLIC_BASE_URL,
        )
    except ValueError as exc:  # an offering type whose usage Waldur converts
        raise WaldurPermanent(str(exc)) from exc


def _create(agent: AgentInstance, *, client: WaldurClient) -> WaldurOffering:
    payload = offering_payload_for(agent)
    try:
        created = client.offering_create(payload)
    except WaldurError:
        # The POST may have been made before the answer was lost: look before failing,
        # so that the next attempt does not make a second offering.
        again = offering_find(agent, client=client)
        if again is None:
            raise
        return again
    # Read it back: the create's answer need not carry the plans' uuids.
    return client.offering(created.uuid)


# --- Bringing it in step --------------------------------------------------------------


def _apply(
    offering: WaldurOffering, changes: list[offerings.Change], *, client: WaldurClient
) -> list[str]:
    plans = {
        p.backend_id: found.uuid
        for p in offering.plans
        if (found := offering.plan_for(p.backend_id)) is not None
    }
    done = []
    for change in changes:
        body = dict(change.payload)
        if change.action == "update_overview":
            client.offering_update_overview(offering.uuid, body)
        elif change.action == "update_description":
            client.offering_update_description(offering.uuid, body)
        elif change.action == "create_offering_component":
            client.offering_component_create(offering.uuid, body)
        elif change.action == "update_offering_component":
            client.offering_component_update(offering.uuid, body)
        elif change.action == "create_plan":
            plans[change.plan] = client.plan_create(body).uuid
        elif change.action == "update_plan":
            client.plan_update(plans[change.plan], body)
        elif change.action == "update_prices":
            client.plan_update_prices(plans[change.plan], body)
        elif change.action == "update_quotas":
            client.plan_update_quotas(plans[change.plan], body)
        elif change.action == "archive_plan":
            client.plan_archive(plans.pop(change.plan))
        elif change.action == "activate":
            client.offering_activate(offering.uuid)
        else:  # a new action in offerings.py needs its call here
            raise WaldurPermanent(f"no Waldur call for {change.action!r}")
        done.append(f"{change.action} {change.plan}".strip())
    return done


def _paused_reason(agent: AgentInstance) -> str:
    last = (
        transitions_of(agent)
        .filter(to_state=AgentState.PAUSED)
        .values_list("reason", flat=True)
        .first()
    )
    return (last or DEFAULT_PAUSED_REASON)[:500]


def _move(
    offering: WaldurOffering, target: str, agent: AgentInstance, client: WaldurClient
) -> list[str]:
    """The state actions from the offering's state to ``target``."""
    state, done = offering.state, []
    if target in (OFFERING_ACTIVE, OFFERING_PAUSED) and state not in (
        OFFERING_ACTIVE,
        OFFERING_PAUSED,
    ):
        client.offering_activate(offering.uuid)  # from Draft or Unavailable
        state = OFFERING_ACTIVE
        done.append("activate")
    if target == OFFERING_ACTIVE and state == OFFERING_PAUSED:
        client.offering_unpause(offering.uuid)
        done.append("unpause")
    elif target == OFFERING_PAUSED and state == OFFERING_ACTIVE:
        client.offering_pause(offering.uuid, reason=_paused_reason(agent))
        done.append("pause")
    return done


def offering_sync(agent: AgentInstance, *, client: WaldurClient) -> Listing:
    """Make the agent's offering what the agent's state calls for (table above).

    Raises ``WaldurError``; what was done before the failure stays done, and the next
    call continues from there (every step is read back from Waldur first).
    """
    target = _target(agent)
    if target is None:
        return Listing(offering_uuid=agent.waldur_offering_uuid, state=None)
    offering = offering_find(agent, client=client)
    calls: list[str] = []
    if target == OFFERING_ARCHIVED:
        if offering is None:
            return Listing(offering_uuid=None, state=None)
        if offering.state != OFFERING_ARCHIVED:
            client.offering_archive(offering.uuid)
            calls.append("archive")
        return Listing(offering_uuid=offering.uuid, state=OFFERING_ARCHIVED, calls=tuple(calls))
    if offering is None:
        offering = _create(agent, client=client)
        calls.append("create")
    if offering.state == OFFERING_ARCHIVED:
        raise WaldurPermanent(
            f"offering {offering.uuid} of agent {agent.agent_id!r} is archived in Waldur; "
            "an archived offering cannot be sold again: retire the agent, or ask Waldur's "
            "staff to restore the offering"
        )
    try:
        changes = offerings.offering_changes(
            offering.details,
            agent,
            public_base_url=settings.PUBLIC_BASE_URL,
            category_url=category_url(),
            activate=False,  # the state is _move's
        )
    except ValueError as exc:  # a price Waldur cannot hold, another agent's offering
        raise WaldurPermanent(str(exc)) from exc
    calls += _apply(offering, changes, client=client)
    calls += _move(offering, target, agent, client)
    if changes:  # read back the plans made or archived
        offering = client.offering(offering.uuid)
    ours = {str(pk) for pk in agent.plans.values_list("pk", flat=True)}
    plan_uuids = {
        p.backend_id: p.uuid for p in offering.plans if p.backend_id in ours and not p.archived
    }
    return Listing(offering.uuid, target, plan_uuids, tuple(calls))


def _describe(exc: WaldurError) -> str:
    kind = "permanent" if isinstance(exc, WaldurPermanent) else "transient"
    return f"{kind}: {exc}"


def _record(agent: AgentInstance, listing: Listing) -> None:
    agent_listing_record(
        agent=agent, offering_uuid=listing.offering_uuid, plan_uuids=listing.plan_uuids
    )


# --- The registry's marketplace hook --------------------------------------------------


class WaldurMarketplace:
    """Waldur as the registry's marketplace (agents/marketplaces.py)."""

    name = "waldur"

    def enabled(self) -> bool:
        return enabled()

    def listing_publish(self, agent: AgentInstance) -> None:
        """Inside the publish (the agent is LISTED, uncommitted, its row locked)."""
        try:
            with client_from_settings() as client:
                listing = offering_sync(agent, client=client)
        except WaldurError as exc:
            logger.warning("waldur_publish_failed agent=%s error=%s", agent.agent_id, exc)
            raise UpstreamFailed(
                f"Waldur could not list the agent, which stays {AgentState.DEPLOYED}: "
                f"{_describe(exc)}",
                details={"marketplace": self.name, "error": _describe(exc)},
            ) from exc
        _record(agent, listing)

    def listing_sync(self, agent_pk: str) -> None:
        """After a commit: never raises, the failure is recorded on the agent."""
        listing_sync(agent_pk, attempts=FOLLOW_UP_ATTEMPTS)


def listing_sync(agent_pk: str, *, attempts: int | None = None) -> str:
    """Bring one agent's offering in step, with the agent's row locked (a publish or
    another sync of the same agent waits, so no two make an offering). Returns what
    it did; a failure is recorded on the agent, not raised."""
    with transaction.atomic():
        agent = AgentInstance.all_objects.select_for_update().filter(pk=agent_pk).first()
        if agent is None:
            return "gone"
        if _target(agent) is None:
            return "unpublished"
        try:
            with client_from_settings() as client:
                if attempts is not None:
                    client.attempts = attempts
                listing = offering_sync(agent, client=client)
        except WaldurError as exc:
            agent_listing_record(agent=agent, error=_describe(exc))
            logger.warning("waldur_listing_failed agent=%s error=%s", agent.agent_id, exc)
            return f"{ERROR_PREFIX}{_describe(exc)}"
        _record(agent, listing)
        return ", ".join(listing.calls) or "unchanged"


# --- The repair pass ------------------------------------------------------------------


class RepairResult(CountedRun):
    pass


def _to_repair():
    """Published agents (LISTED, ACTIVE, PAUSED), each diffed (one read when nothing
    differs); retired agents only until their offering is known archived: one with an
    offering or a recorded error, not synced since it was retired."""
    retired_not_done = (
        Q(state=AgentState.RETIRED)
        & (Q(waldur_offering_uuid__isnull=False) | ~Q(listing_error=""))
        & (
            ~Q(listing_error="")
            | Q(listing_synced_at__isnull=True)
            | Q(listing_synced_at__lt=F("state_changed_at"))
        )
    )
    return AgentInstance.objects.filter(
        Q(state__in=lifecycle.PUBLISHED_STATES) | retired_not_done
    ).order_by("agent_id")


def offerings_repair(*, progress: Callable[[str], object] | None = None) -> RepairResult:
    """Every published agent's offering in step, every retired agent's archived."""
    result = RepairResult()
    for agent_pk, agent_id, state in _to_repair().values_list("pk", "agent_id", "state"):
        outcome = listing_sync(str(agent_pk))
        if outcome.startswith(ERROR_PREFIX):
            kind = "errors"
            result.errors.append(f"{agent_id} ({state}): {outcome.removeprefix(ERROR_PREFIX)}")
        else:
            kind = "unchanged" if outcome in ("unchanged", "gone", "unpublished") else "changed"
        result.counts[kind] = result.counts.get(kind, 0) + 1
        if progress is not None:
            progress(f"{agent_id} ({state}): {outcome}")
    return result
