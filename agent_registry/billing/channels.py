"""Billing channels: where a finalized statement goes to be invoiced.

A channel is what turns the registry's statement of a month into someone's invoice:
Waldur (component usage reported to the customer's resource), Stripe (meter events and
an invoice), or nothing (``none``: free or internal use, the statement stays here).
The cycle job hands each statement it finalizes to the channel; the channel owns the
outside call, its retries and its record of what was sent, and reports where a
statement stands (``sync_status``) for the admin and reconciliation.

The channel is chosen by settings (Wagtail's embed finders, STYLE.md): ``BILLING_CHANNEL``
names one entry of ``BILLING_CHANNELS`` (name → dotted path of a class taking no
arguments). Only ``none`` exists today; the Waldur and Stripe integrations implement
``BillingChannel`` and add their entry (issues 11 and 12).

Contract for implementations: ``push_statement`` runs after the finalizing
transaction has committed and must not assume it may raise to undo anything; it
should only queue its work (a Celery task with its own retries) and return quickly.
A push failing is logged and never unfinalizes the month.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from agent_registry.billing.statements import Statement

__all__ = [
    "BillingChannel",
    "FinalizedStatement",
    "NoneChannel",
    "SyncStatus",
    "channel",
    "get_channel",
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
    """The channel statements go to (``BILLING_CHANNEL``).

    One for the whole deployment today. When a subscription can be billed through a
    channel of its own (a Waldur order, a Stripe checkout), this is where it is chosen.
    """
    return get_channel(settings.BILLING_CHANNEL)
