"""Reconciliation with the systems that invoice: checks registered by their apps.

Billing imports no channel's app. An integration that holds billed usage elsewhere
(Waldur's component usages; later Stripe's meter events) registers a check from its
``AppConfig.ready``; ``reconcile_period`` runs every registered check after the
tenants' own, outside their read-only transactions (a check may call out over the
network), and adds what it finds to the report. A check compares only: it never
changes anything on either side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agent_registry.billing.reconciliation.report import Finding


@dataclass(slots=True)
class ExternalResult:
    """What one external check found, and one line for the report's ``external``."""

    summary: str
    findings: list[Finding] = field(default_factory=list)


# (period, now, tenant slug or None) → the result; None when the integration is off.
ExternalCheck = Callable[[str, datetime, "str | None"], "ExternalResult | None"]

_checks: dict[str, ExternalCheck] = {}


def register(name: str, check: ExternalCheck) -> None:
    """Add (or replace) the external check ``name`` (from an app's ``ready``)."""
    _checks[name] = check


def registered() -> dict[str, ExternalCheck]:
    return dict(_checks)
