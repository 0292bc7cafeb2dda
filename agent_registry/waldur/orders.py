"""Waldur marketplace orders → subscriptions and keys, the way Waldur's site agent does it.

One pass (``orders_process``) lists the provider's orders in ``pending-provider`` and
``executing`` and takes each through the named steps of its type (``STEPS``):

- **approve**: decide (the plan, the project and its tenant, the agent); a refusal
  rejects a pending order with the reason (``reject_by_provider``), or marks an
  already executing one erred. Otherwise a pending order is approved (→ executing).
- Create: **subscribe** (an ``AgentAccess`` for the order's project and plan,
  ``PROVISIONING``, billed through Waldur, with the order's and the resource's uuids),
  **hand_over_key** (``report_created``, or ``set_key`` when Waldur already has a key
  with the subscription's ``client_id``), **resource_backend_id**, **order_backend_id**
  (the subscription's id), **resource_endpoints** (the gateway URLs), **activate** (the
  key starts working), **done** (``set_state_done`` only while the order is executing).
- Update: **change_plan** (quota and rate limit follow at once). Terminate: **revoke**.
  Restore: **restore** (a suspended subscription works again). Each then **done**.

**Idempotent across crashes and repeats.** ``WaldurOrder.step`` is the last step
finished; a later pass resumes after it. Every step can run twice with one effect: the
subscription is found by its order uuid, Waldur's calls set values (backend id,
endpoints, state), and a key is only ever handed over fresh: the plaintext exists only
in memory, so a pass that did not issue it itself re-issues it (``access_key_rotate``,
no grace) before reporting it. The subscription stays ``PROVISIONING`` (the gateway
refuses it) until a hand-over has succeeded, so no key works that Waldur does not have,
and exactly the last key handed over works. A pass holds an order for ``CLAIM`` so two
passes never work on it at once; a crash leaves the claim to expire.

**Errors.** ``WaldurTransient`` (after the client's own retries) leaves the order for
the next pass (outcome ``retry``). ``WaldurPermanent`` and the registry's refusals
(``RegistryError``) are permanent: ``set_state_erred`` with the message; a Create's
provisioning subscription is revoked then (its key never worked).

Keys never reach a log line, an error, a step record or Waldur's other calls: they go
from ``access_create``/``access_key_rotate`` straight into the hand-over request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from agent_registry.access.models import AccessStatus, AgentAccess, BillingChannelName
from agent_registry.access.services import (
    access_activate,
    access_create,
    access_key_rotate,
    access_plan_change,
    access_restore,
    access_revoke,
    access_suspend,
)
from agent_registry.agents import lifecycle
from agent_registry.agents.models import AgentInstance, AgentPlan
from agent_registry.agents.selectors import plan_lineage_ids
from agent_registry.core.errors import RegistryError
from agent_registry.core.runs import CountedRun
from agent_registry.tenants.models import AgentProject
from agent_registry.waldur import metrics
from agent_registry.waldur.client import (
    MarketplaceOrder,
    ProviderOffering,
    ProviderResource,
    WaldurClient,
)
from agent_registry.waldur.errors import WaldurError, WaldurPermanent, WaldurTransient
from agent_registry.waldur.models import OrderOutcome, WaldurOrder
from agent_registry.waldur.offerings import gateway_url
from agent_registry.waldur.sync import project_refresh

logger = logging.getLogger(__name__)

PENDING = "pending-provider"
EXECUTING = "executing"
CREATE, UPDATE, TERMINATE, RESTORE = "Create", "Update", "Terminate", "Restore"
STEPS: dict[str, tuple[str, ...]] = {
    CREATE: (
        "approve",
        "subscribe",
        "hand_over_key",
        "resource_backend_id",
        "order_backend_id",
        "resource_endpoints",
        "activate",
        "done",
    ),
    UPDATE: ("approve", "change_plan", "done"),
    TERMINATE: ("approve", "revoke", "done"),
    RESTORE: ("approve", "restore", "done"),
}
CLAIM = timedelta(minutes=5)
OUR_FAULT = frozenset({401, 403})  # Waldur refused the registry, not the order
TERMINATED_REASON = "Terminated in Waldur."
ERRED_REASON = "Its Waldur order failed."
# Waldur's terminal order states → what the row records when it sees one.
FINAL_STATES = {
    "done": OrderOutcome.DONE,
    "rejected": OrderOutcome.REJECTED,
    "canceled": OrderOutcome.REJECTED,
    "erred": OrderOutcome.ERRED,
}


class Rejected(Exception):
    """The registry will not fulfil the order; the message is the reason Waldur shows."""


def client_id_for(access: AgentAccess) -> str:
    """The stable name of a subscription's key in Waldur (one key per subscription)."""
    return f"agent-registry-{access.pk}"


def _step_done(name: str) -> None:
    """Called after each step's effect and before it is recorded. A seam for tests,
    which make it raise to crash the pass between any two steps."""


# --- Reading what an order is about ---------------------------------------------------


@dataclass
class Order:
    """One order being processed: Waldur's view, our row, and what the steps found."""

    client: WaldurClient
    waldur: MarketplaceOrder
    row: WaldurOrder
    offering: ProviderOffering
    agent: AgentInstance
    api_key: str | None = None  # only between subscribe and hand_over_key of one pass

    @property
    def access(self) -> AgentAccess | None:
        return self.row.access


def _provider_uuid() -> UUID:
    value = settings.WALDUR_PROVIDER_CUSTOMER_UUID
    if not value:
        raise ImproperlyConfigured("WALDUR_PROVIDER_CUSTOMER_UUID is not set")
    try:
        return UUID(value)
    except ValueError as exc:
        raise ImproperlyConfigured("WALDUR_PROVIDER_CUSTOMER_UUID is not a UUID") from exc


def _agent_of(offering: ProviderOffering) -> AgentInstance | None:
    """The agent an offering sells, if it is one of ours (``backend_id`` = agent_id)."""
    if offering.customer_uuid not in (None, _provider_uuid()) or not offering.backend_id:
        return None
    # Deleted agents too: their subscriptions must still be terminated or paused.
    return AgentInstance.all_objects.filter(agent_id=offering.backend_id).first()


def _plan_of(order: Order, plan_uuid: UUID | None) -> AgentPlan:
    """The registry plan behind a Waldur plan of the offering (its ``backend_id``)."""
    backend_id = order.offering.plan_backend_id(plan_uuid) if plan_uuid else ""
    try:
        plan = AgentPlan.objects.filter(pk=UUID(backend_id), agent=order.agent).first()
    except ValueError:
        plan = None
    if plan is None:
        raise Rejected("Unknown plan: it is not a plan of this agent in the registry.")
    if not plan.is_active:
        raise Rejected(f"The plan '{plan.name}' is no longer offered.")
    return plan


def _project_of(order: Order) -> AgentProject:
    """The order's project, mirrored first (the order may come before the hook)."""
    uuid = order.waldur.project_uuid
    if uuid is None:
        raise Rejected("The order names no project.")
    project_refresh(client=order.client, project_uuid=uuid)
    project = (
        AgentProject.all_objects.select_related("tenant").filter(waldur_project_uuid=uuid).first()
    )
    if project is None or not project.is_active or project.deleted_at is not None:
        raise Rejected("Unknown or archived project.")
    if not project.tenant.is_active:
        raise Rejected("The organisation is suspended in the registry.")
    return project


def _subscription_of(order: Order) -> AgentAccess:
    """The subscription an Update/Terminate/Restore is about (by its resource)."""
    access = (
        AgentAccess.all_objects.filter(waldur_resource_uuid=order.waldur.resource_uuid).first()
        if order.waldur.resource_uuid
        else None
    )
    if access is None:
        raise Rejected("No subscription in the registry for this resource.")
    return access


def _check_create(order: Order) -> tuple[AgentPlan, AgentProject]:
    plan = _plan_of(order, order.waldur.plan_uuid)
    project = _project_of(order)
    if order.agent.deleted_at is not None:
        raise Rejected("The agent no longer exists.")
    if order.agent.state not in lifecycle.SUBSCRIBABLE_STATES:
        raise Rejected(f"The agent is {order.agent.state}; it takes no subscriptions now.")
    taken = (
        AgentAccess.objects.filter(project=project, plan_id__in=plan_lineage_ids(plan))
        .exclude(status=AccessStatus.REVOKED)
        .exclude(waldur_order_uuid=order.waldur.uuid)
    )
    if taken.exists():
        raise Rejected("The project already has a subscription to this plan.")
    return plan, project


def _check(order: Order) -> None:
    kind = order.waldur.type
    if kind == CREATE and order.access is None:
        _check_create(order)
    elif kind == UPDATE:
        access = _subscription_of(order)
        if access.status == AccessStatus.REVOKED:
            raise Rejected("The subscription is revoked.")
        _plan_of(order, order.waldur.plan_uuid)
    elif kind == RESTORE and _subscription_of(order).status == AccessStatus.REVOKED:
        raise Rejected("A revoked subscription cannot be restored; order a new one.")


# --- The steps ------------------------------------------------------------------------


def _approve(order: Order) -> None:
    _check(order)
    if order.waldur.state != PENDING:
        return
    try:
        order.client.order_approve(order.waldur.uuid)
    except WaldurPermanent:
        # Listed as pending, but perhaps approved since (an earlier, crashed pass).
        if order.client.order(order.waldur.uuid).state != EXECUTING:
            raise
        return
    metrics.order_counted(order.waldur.type, "approved")


def _subscribe(order: Order) -> None:
    existing = AgentAccess.all_objects.filter(waldur_order_uuid=order.waldur.uuid).first()
    if existing is not None:
        _remember_access(order, existing)
        return
    plan, project = _check_create(order)
    with transaction.atomic():
        issued = access_create(
            agent=order.agent,
            plan=plan,
            project=project,
            name=order.waldur.resource_name[:200],
            waldur_user_email=order.waldur.created_by_email[:254],
            status=AccessStatus.PROVISIONING,
            billing_channel=BillingChannelName.WALDUR,
            waldur_order_uuid=order.waldur.uuid,
            waldur_resource_uuid=order.waldur.resource_uuid,
        )
        _remember_access(order, issued.access)
    order.api_key = issued.api_key


def _remember_access(order: Order, access: AgentAccess) -> None:
    order.row.access = access
    order.row.save(update_fields=["access", "updated_at"])


def _hand_over_key(order: Order) -> None:
    access = _access(order)
    if access.status == AccessStatus.REVOKED:
        raise WaldurPermanent(
            "its subscription was revoked when the order failed; the customer orders again"
        )
    if access.status != AccessStatus.PROVISIONING:
        raise WaldurPermanent(f"the subscription is {access.status}, not provisioning")
    api_key = order.api_key
    if api_key is None:
        # Only the hash is stored: a key issued by an earlier pass is gone. A new one
        # replaces it at once (no grace), so the unreported one never works.
        api_key = access_key_rotate(access=access, grace_seconds=0).api_key
    order.api_key = None
    client_id = client_id_for(access)
    resource = _resource_uuid(order)
    known = [k for k in order.client.resource_api_keys(resource) if k.client_id == client_id]
    if known:
        status = order.client.api_key_set(known[0].uuid, client_id=client_id, api_key=api_key)
    else:
        status = order.client.api_key_report_created(
            resource_uuid=resource, client_id=client_id, api_key=api_key
        )
    order.row.key_uuid = status.uuid
    order.row.save(update_fields=["key_uuid", "updated_at"])


def _resource_backend_id(order: Order) -> None:
    order.client.resource_set_backend_id(_resource_uuid(order), backend_id=str(_access(order).pk))


def _order_backend_id(order: Order) -> None:
    order.client.order_set_backend_id(order.waldur.uuid, backend_id=str(_access(order).pk))


def _resource_endpoints(order: Order) -> None:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    order.client.resource_set_endpoints(
        _resource_uuid(order),
        endpoints=[
            ("Gateway", gateway_url(order.agent, base)),
            ("OpenAI-compatible API", f"{base}/v1"),
        ],
    )


def _activate(order: Order) -> None:
    access_activate(access=_access(order))


def _change_plan(order: Order) -> None:
    access = _subscription_of(order)
    _remember_access(order, access)
    access_plan_change(access=access, plan=_plan_of(order, order.waldur.plan_uuid))


def _revoke(order: Order) -> None:
    access = AgentAccess.all_objects.filter(waldur_resource_uuid=_resource_uuid(order)).first()
    if access is not None:  # nothing subscribed: nothing to stop
        _remember_access(order, access)
        access_revoke(access=access, reason=TERMINATED_REASON)


def _restore(order: Order) -> None:
    access = _subscription_of(order)
    _remember_access(order, access)
    if access.status == AccessStatus.SUSPENDED:
        access_restore(access=access)


def _done(order: Order) -> None:
    """``set_state_done`` only while the order is executing (re-read: a repeat is a no-op)."""
    state = order.client.order(order.waldur.uuid).state
    if state == EXECUTING:
        order.client.order_set_done(order.waldur.uuid)
    elif state != "done":
        raise WaldurPermanent(f"the order is {state} in Waldur, not executing")


RUNNERS: dict[str, Callable[[Order], None]] = {
    "approve": _approve,
    "subscribe": _subscribe,
    "hand_over_key": _hand_over_key,
    "resource_backend_id": _resource_backend_id,
    "order_backend_id": _order_backend_id,
    "resource_endpoints": _resource_endpoints,
    "activate": _activate,
    "change_plan": _change_plan,
    "revoke": _revoke,
    "restore": _restore,
    "done": _done,
}


def _access(order: Order) -> AgentAccess:
    if order.row.access is None:
        raise WaldurPermanent("the order has no subscription yet")
    return order.row.access


def _resource_uuid(order: Order) -> UUID:
    if order.waldur.resource_uuid is None:
        raise WaldurPermanent("the order names no resource")
    return order.waldur.resource_uuid


def _steps_left(row: WaldurOrder, kind: str) -> tuple[str, ...]:
    """The steps after the last one finished; ``done`` always (it re-reads the state)."""
    steps = STEPS[kind]
    if row.step not in steps:
        return steps
    return steps[steps.index(row.step) + 1 :] or steps[-1:]


# --- One order ------------------------------------------------------------------------


def _claim(waldur: MarketplaceOrder) -> WaldurOrder | None:
    defaults = {
        "order_type": waldur.type,
        "offering_uuid": waldur.offering_uuid,
        "resource_uuid": waldur.resource_uuid,
        "waldur_state": waldur.state,
    }
    try:
        row, _ = WaldurOrder.objects.get_or_create(order_uuid=waldur.uuid, defaults=defaults)
    except IntegrityError:  # another pass made it meanwhile
        row = WaldurOrder.objects.get(order_uuid=waldur.uuid)
    if not _claim_row(row):
        return None
    row.refresh_from_db()
    return row


def _claim_row(row: WaldurOrder) -> bool:
    """Hold the order for ``CLAIM`` unless another pass holds it (a conditional update)."""
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return bool(WaldurOrder.objects.filter(free, pk=row.pk).update(claimed_until=now + CLAIM))


def order_process(
    *, client: WaldurClient, waldur: MarketplaceOrder, offering: ProviderOffering
) -> str:
    """Take one order as far as it goes now; the outcome for the pass's counts."""
    agent = _agent_of(offering)
    if agent is None or waldur.type not in STEPS:
        return "skipped"  # not an offering of ours, or an order type we do not handle
    row = _claim(waldur)
    if row is None:
        return "busy"
    order = Order(client=client, waldur=waldur, row=row, offering=offering, agent=agent)
    row.attempts += 1
    row.waldur_state = waldur.state
    row.outcome = OrderOutcome.IN_PROGRESS
    row.save(update_fields=["attempts", "waldur_state", "outcome", "updated_at"])
    try:
        for name in _steps_left(row, waldur.type):
            RUNNERS[name](order)
            _step_done(name)
            row.step = name
            row.save(update_fields=["step", "updated_at"])
        _finish(row, OrderOutcome.DONE, state="done")
        metrics.order_counted(waldur.type, "done")
        return "done"
    except Rejected as exc:
        return _refuse(order, str(exc))
    except (WaldurError, RegistryError) as exc:
        if isinstance(exc, WaldurTransient):
            return _record_retry(order, f"transient: {exc}")
        if isinstance(exc, WaldurError) and exc.status in OUR_FAULT:
            # Our token is wrong or lacks rights: the customer's order is not at fault.
            return _record_retry(order, f"refused by Waldur (check the token): {exc}")
        return _refuse(order, f"permanent: {exc}")
    finally:
        WaldurOrder.objects.filter(pk=row.pk).update(claimed_until=None)


def _refuse(order: Order, reason: str) -> str:
    """A pending order is rejected with the reason; an approved one is marked erred."""
    if order.waldur.state != PENDING or order.row.step:
        return _fail(order, reason)
    try:
        order.client.order_reject(order.waldur.uuid, comment=reason)
    except WaldurError as exc:
        return _record_retry(order, f"could not reject ({reason}): {exc}")
    _finish(order.row, OrderOutcome.REJECTED, state="rejected", error=reason)
    logger.info("waldur order %s rejected: %s", order.waldur.uuid, reason)
    metrics.order_counted(order.waldur.type, "rejected")
    return "rejected"


def _fail(order: Order, message: str) -> str:
    """Tell Waldur the order failed; a Create's subscription goes (its key never worked)."""
    try:
        order.client.order_set_erred(order.waldur.uuid, message=message)
    except WaldurError as exc:
        return _record_retry(order, f"{message}; could not mark it erred: {exc}")
    _drop_provisioning(order.row)
    _finish(order.row, OrderOutcome.ERRED, state="erred", error=message)
    logger.warning("waldur order %s erred: %s", order.waldur.uuid, message)
    metrics.order_counted(order.waldur.type, "erred")
    return "erred"


def _record_retry(order: Order, message: str) -> str:
    order.row.outcome = OrderOutcome.RETRY
    order.row.error = message[:2000]
    order.row.save(update_fields=["outcome", "error", "updated_at"])
    logger.warning("waldur order %s: will retry: %s", order.waldur.uuid, message)
    metrics.order_counted(order.waldur.type, "retry")
    return "retry"


def _drop_provisioning(row: WaldurOrder) -> None:
    access = row.access
    if row.order_type == CREATE and access is not None:
        access.refresh_from_db()
        if access.status == AccessStatus.PROVISIONING:
            access_revoke(access=access, reason=ERRED_REASON)


def _finish(row: WaldurOrder, outcome: str, *, state: str, error: str = "") -> None:
    row.outcome = outcome
    row.waldur_state = state
    row.error = error[:2000]
    row.finished_at = timezone.now()
    row.save(update_fields=["outcome", "waldur_state", "error", "finished_at", "updated_at"])


# --- Resources: paused, restored, terminated --------------------------------------------


def resource_mirror(*, resource: ProviderResource) -> str:
    """The subscription follows its resource: paused → suspended, unpaused → active
    again, terminated → revoked. A subscription still provisioning is left to its order."""
    access = AgentAccess.all_objects.filter(waldur_resource_uuid=resource.uuid).first()
    if access is None or access.status in (AccessStatus.REVOKED, AccessStatus.PROVISIONING):
        return "unchanged"
    if resource.state == "Terminated":
        access_revoke(access=access, reason=TERMINATED_REASON)
        return "revoked"
    if resource.paused and access.status == AccessStatus.ACTIVE:
        access_suspend(access=access)
        return "suspended"
    if not resource.paused and access.status == AccessStatus.SUSPENDED:
        access_restore(access=access)
        return "restored"
    return "unchanged"


# --- The pass ---------------------------------------------------------------------------


class OrdersResult(CountedRun):
    pass


def orders_process(
    *,
    client: WaldurClient,
    offering_uuid: UUID | None = None,
    progress: Callable[[str], None] | None = None,
) -> OrdersResult:
    """One pass over the provider's waiting orders (of one offering, when given), then
    the resources' paused state and the orders left unfinished (full pass only).

    An order left for a retry or erred is an error of the pass (the command exits
    non-zero); rejected orders are not: rejecting is the pass doing its job."""
    say = progress or (lambda line: None)
    result = OrdersResult()
    provider = _provider_uuid()
    try:
        orders = client.orders(provider_uuid=provider, offering_uuid=offering_uuid)
    except WaldurError as exc:
        result.errors.append(f"listing orders: {exc}")
        return result
    offerings: dict[UUID, ProviderOffering | str] = {}
    for waldur in orders:
        outcome = _one(client, waldur, offerings)
        result.tally(outcome)
        if outcome in ("retry", "erred"):
            row = WaldurOrder.objects.filter(order_uuid=waldur.uuid).first()
            unread = offerings.get(waldur.offering_uuid)
            error = row.error if row else unread if isinstance(unread, str) else outcome
            result.errors.append(f"{waldur.type} order {waldur.uuid}: {error}")
        if outcome not in ("skipped", "busy"):
            say(f"{waldur.type} order {waldur.uuid}: {outcome}")
    if offering_uuid is None:
        _resources_pass(client, provider, result, say)
        _close_unlisted(client, {o.uuid for o in orders}, result, say)
    return result


def _one(
    client: WaldurClient,
    waldur: MarketplaceOrder,
    offerings: dict[UUID, ProviderOffering | str],
) -> str:
    """One listed order; ``offerings`` caches each offering read (or why it failed)."""
    if waldur.offering_uuid not in offerings:
        try:
            offerings[waldur.offering_uuid] = client.provider_offering(waldur.offering_uuid)
        except WaldurError as exc:
            logger.warning("waldur orders: offering %s unreadable: %s", waldur.offering_uuid, exc)
            offerings[waldur.offering_uuid] = f"its offering is unreadable: {exc}"
    offering = offerings[waldur.offering_uuid]
    if isinstance(offering, str):
        return "retry"  # the order waits; the next pass reads the offering again
    return order_process(client=client, waldur=waldur, offering=offering)


def _resources_pass(
    client: WaldurClient, provider: UUID, result: OrdersResult, say: Callable[[str], None]
) -> None:
    try:
        resources = client.resources(provider_uuid=provider)
    except WaldurError as exc:
        result.errors.append(f"listing resources: {exc}")
        return
    for resource in resources:
        try:
            outcome = resource_mirror(resource=resource)
        except RegistryError as exc:
            result.errors.append(f"resource {resource.uuid}: {exc}")
            continue
        if outcome != "unchanged":
            result.tally(f"resources_{outcome}")
            say(f"resource {resource.uuid}: {outcome}")


def _close_unlisted(
    client: WaldurClient, listed: set[UUID], result: OrdersResult, say: Callable[[str], None]
) -> None:
    """Rows still open whose order is no longer waiting (finished meanwhile in Waldur,
    or our last record was lost in a crash): record Waldur's final state. A Create
    that ended without being done leaves no provisioning subscription behind."""
    open_rows = WaldurOrder.objects.filter(
        outcome__in=[OrderOutcome.IN_PROGRESS, OrderOutcome.RETRY]
    ).exclude(order_uuid__in=listed)[:100]
    for row in open_rows:
        try:
            state = client.order(row.order_uuid).state
        except WaldurError as exc:
            result.errors.append(f"order {row.order_uuid}: {exc}")
            continue
        if state not in FINAL_STATES or not _claim_row(row):
            continue
        try:
            if state != "done":
                _drop_provisioning(row)
            error = row.error if state != "done" else ""
            _finish(row, FINAL_STATES[state], state=state, error=error)
        finally:
            WaldurOrder.objects.filter(pk=row.pk).update(claimed_until=None)
        say(f"{row.order_type} order {row.order_uuid}: {state} in Waldur")
