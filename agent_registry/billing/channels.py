"""Billing channels: where a finalized statement goes to be invoiced.

A channel is what turns the registry's statement of a month into someone's invoice:
Waldur (component usage reported to the customer's resource), Stripe (meter events and
an invoice), or nothing (``none``: free or internal use, the statement stays here).
The cycle job hands each statement it finalizes to the channel; the channel owns the
outside call, its retries and its record of what was sent, and reports where a
statement stands (``sync_status``) for the admin and reconciliation.

Channels are named in settings (Wagtail's embed finders, STYLE.md): ``BILLING_CHANNELS``
maps a name to the dotted path of a class taking no arguments (``none``; ``waldur`` from
the Waldur app, issue 11; Stripe will add its own, issue 12).

**Routing: one channel per subscription.** Each subscription names where its money goes
(``AgentAccess.billing_channel``: ``none``, ``waldur``, ``stripe``). A finalized
statement is split by that (``route``): each channel gets the part of the statement
that bills its own subscriptions (their entries and adjustment lines), so a
subscription's money goes to exactly one channel, never two. A subscription left at
``none`` goes to the deployment's default channel, ``BILLING_CHANNEL`` (itself ``none``
unless configured), which is how a deployment with one channel for everyone works.

Contract for implementations: ``push_statement`` runs after the finalizing
transaction has committed and must not assume it may raise to undo anything; it
should only queue its work (a Celery task with its own retries) and return quickly.
A push failing is logged and never unfinalizes the month.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from agent_registry.access.models import AgentAccess, BillingChannelName
from agent_registry.billing.statements import Statement

__all__ = [
    "BillingChannel",
    "FinalizedStatement",
    "NoneChannel",
    "SyncStatus",
    "channel",
    "channel_for",
    "get_channel",
    "route",
    "sync_status",
]


@dataclass(frozen=True, slots=True)
class FinalizedStatement:
    """One tenant's finalized month in one currency: what a channel invoices.

    ``(tenant_id, period, currency)`` identifies it (the snapshot row's unique key), so
    a channel can use it as its idempotency key: the same statement pushed twice must
    be invoiced once.
    """

    tenant_id: Any
    period: str
    currency: str
    statement: Statement
    total_cost_cents: int


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """Where a statement stands with its channel."""

    state: Literal["not_applicable", "pending", "synced", "failed"]
    detail: str = ""


class BillingChannel(Protocol):
    """What a billing channel implements."""

    name: str

    def push_statement(self, finalized: FinalizedStatement) -> None:
        """Take a statement that was just finalized (queue the outside calls)."""
        ...

    def sync_status(self, snapshot: Any) -> SyncStatus:
        """Where the statement of this ``TenantQuotaSnapshot`` stands with the channel."""
        ...


class NoneChannel:
    """Free or internal use: the statement is the record, nothing is sent anywhere."""

    name = "none"

    def push_statement(self, finalized: FinalizedStatement) -> None:
        return None

    def sync_status(self, snapshot: Any) -> SyncStatus:
        return SyncStatus("not_applicable", "no billing channel: nothing is sent")


@functools.cache
def get_channel(name: str) -> BillingChannel:
    """The channel ``name`` from ``BILLING_CHANNELS``, built once per process."""
    path = settings.BILLING_CHANNELS.get(name)
    if path is None:
        known = ", ".join(sorted(settings.BILLING_CHANNELS))
        raise ImproperlyConfigured(f"BILLING_CHANNEL: unknown channel {name!r} (known: {known})")
    built: BillingChannel = import_string(path)()
    return built


def settings_changed(*, setting: str, **_kwargs: Any) -> None:
    """``setting_changed`` receiver: tests that override the channel get a fresh one."""
    if setting in {"BILLING_CHANNEL", "BILLING_CHANNELS"}:
        get_channel.cache_clear()


def check_channel(**_kwargs: Any) -> list[Error]:
    """System check: ``BILLING_CHANNEL`` names a channel that can be built."""
    try:
        channel()
    except (ImproperlyConfigured, ImportError) as exc:
        return [Error(str(exc), id="billing.E001")]
    return []


def channel() -> BillingChannel:
    """The deployment's default channel (``BILLING_CHANNEL``): where the money of a
    subscription without a channel of its own (``billing_channel`` ``none``) goes."""
    return get_channel(settings.BILLING_CHANNEL)


def channel_for(billing_channel: str) -> BillingChannel:
    """The channel a subscription's ``billing_channel`` names (``none``: the default)."""
    if billing_channel and billing_channel != BillingChannelName.NONE:
        return get_channel(billing_channel)
    return channel()


def route(finalized: FinalizedStatement) -> list[tuple[BillingChannel, FinalizedStatement]]:
    """Each channel with the part of the statement that bills its subscriptions.

    Every subscription of the statement is in exactly one part. A statement whose
    subscriptions all go to one channel is handed over whole.
    """
    subscriptions = finalized.statement.subscriptions()
    names = {
        str(pk): name
        for pk, name in AgentAccess.all_objects.filter(pk__in=list(subscriptions)).values_list(
            "pk", "billing_channel"
        )
    }
    groups: dict[str, tuple[BillingChannel, set[str]]] = {}
    for subscription in subscriptions:
        to = channel_for(names.get(subscription, BillingChannelName.NONE))
        groups.setdefault(to.name, (to, set()))[1].add(subscription)
    if not groups:  # nothing billed per subscription: the default takes it, as always
        return [(channel(), finalized)]
    if len(groups) == 1:
        [(to, _)] = groups.values()
        return [(to, finalized)]
    parts = []
    for _, (to, members) in sorted(groups.items()):
        part = finalized.statement.only(members)
        parts.append(
            (to, replace(finalized, statement=part, total_cost_cents=part.total_cost_cents))
        )
    return parts


# Worst first: a snapshot billed by two channels stands where the worse of them does.
_SEVERITY = ("failed", "pending", "synced", "not_applicable")


def sync_status(snapshot: Any) -> SyncStatus:
    """Where a snapshot's statement stands with every channel that bills part of it
    (for the admin): each channel's own ``sync_status``, the worst of them."""
    subscriptions = Statement.of(snapshot).subscriptions()
    names = set(
        AgentAccess.all_objects.filter(pk__in=list(subscriptions)).values_list(
            "billing_channel", flat=True
        )
    ) or {BillingChannelName.NONE}
    billing = {to.name: to for to in (channel_for(name) for name in names)}
    statuses = [to.sync_status(snapshot) for _, to in sorted(billing.items())]
    return min(statuses, key=lambda status: _SEVERITY.index(status.state))
