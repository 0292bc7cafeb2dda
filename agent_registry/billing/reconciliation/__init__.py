"""Usage reconciliation: do the counters, records, summaries and snapshots agree?

Per tenant and UTC month, read-only. The usage records are the source of truth; each
check compares one derived copy with them (or with the copy it was derived from) and
returns ``Difference``s (drift: exit 2, logged at error level) and ``Note``s (could
not compare, or a lag that is expected). The rules, and what to do about each kind of
difference, are in docs/reconciliation.md.

Everything a tenant's checks need is read first, from one database snapshot
(PostgreSQL: a REPEATABLE READ, READ ONLY transaction), so the usage writer's records
and the ``quota_used`` it updates in the same transaction are seen at one instant. The
gateway's Redis counters are read after that snapshot: a counter can then only have
moved ahead of the records read, never behind.

Modules: ``reading`` (one tenant's data), ``checks`` (one function per comparison),
``external`` (checks against the systems that invoice, registered by their apps: Waldur),
``rules`` (time windows), ``report``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta

import structlog
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone

from agent_registry.access.models import AgentAccess
from agent_registry.billing.reconciliation import external
from agent_registry.billing.reconciliation.checks import CHECKS
from agent_registry.billing.reconciliation.reading import Counters, load_tenant
from agent_registry.billing.reconciliation.report import (
    Difference,
    Note,
    ReconciliationReport,
    TenantResult,
)
from agent_registry.core import periods
from agent_registry.tenants.models import AgentTenant

__all__ = [
    "Difference",
    "Note",
    "ReconciliationReport",
    "TenantResult",
    "reconcile_period",
    "reconcile_recent",
    "validate_period",
]

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[int, int, str, TenantResult], None]


# --- Running it -----------------------------------------------------------------------


def validate_period(period: str, now: datetime) -> str:
    """``YYYY-MM`` of a month that has begun; ValueError saying what is wrong."""
    periods.parse_period(period)
    if period > periods.period_of(now):
        raise ValueError(f"{period} has not begun yet")
    return period


def _tenants(period: str, tenant_slug: str | None) -> list[AgentTenant]:
    if tenant_slug is not None:
        tenant = AgentTenant.all_objects.filter(slug=tenant_slug).first()
        if tenant is None:
            raise LookupError(f"no tenant {tenant_slug!r}")
        return [tenant]
    # Records need a subscription, so these are all tenants that can have anything.
    return list(
        AgentTenant.all_objects.filter(
            Q(accesses__isnull=False) | Q(quota_snapshots__billing_cycle_id=period)
        )
        .distinct()
        .order_by("slug")
    )


def reconcile_period(
    period: str,
    *,
    tenant_slug: str | None = None,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ReconciliationReport:
    """Compare every source of usage for ``period`` (``YYYY-MM``, UTC), per tenant.

    ValueError for a malformed or future period, LookupError for an unknown tenant.
    ``progress(done, total, tenant_slug, result)`` is called after each tenant.
    """
    now = now or timezone.now()
    report = ReconciliationReport(validate_period(period, now), now)
    tenants = _tenants(period, tenant_slug)
    # Cached from here on: looked up (or created) outside the read-only transactions.
    ContentType.objects.get_for_model(AgentAccess)
    counters = Counters()
    try:
        for index, tenant in enumerate(tenants, start=1):
            data = load_tenant(tenant, period, now)
            counters.read(data)
            result = TenantResult(
                tenant.slug,
                subscriptions=len({a for a, _, _ in data.records}),
                records=sum(r.figures.calls for r in data.records.values()),
            )
            for check in CHECKS:
                for finding in check(data):
                    if isinstance(finding, Difference):
                        result.differences.append(finding)
                    else:
                        result.notes.append(finding)
            report.tenants.append(result)
            if progress is not None:
                progress(index, len(tenants), tenant.slug, result)
    finally:
        counters.close()
    _external(report, period, now, tenant_slug)
    return report


def _external(
    report: ReconciliationReport, period: str, now: datetime, tenant_slug: str | None
) -> None:
    """Run the registered external checks (Waldur…) and file their findings by tenant."""
    checks = external.registered()
    if not checks:
        return
    by_slug = {result.tenant: result for result in report.tenants}
    summaries = []
    for name, check in sorted(checks.items()):
        try:
            found = check(period, now, tenant_slug)
        except Exception as exc:  # one integration failing must not hide the others
            log.exception("usage_reconciliation_external_failed", check=name)
            summaries.append(f"{name}: failed ({type(exc).__name__})")
            continue
        if found is None:  # that integration is off
            continue
        summaries.append(found.summary)
        for finding in found.findings:
            result = by_slug.get(finding.tenant)
            if result is None:
                result = by_slug[finding.tenant] = TenantResult(finding.tenant)
                report.tenants.append(result)
            if isinstance(finding, Difference):
                result.differences.append(finding)
            else:
                result.notes.append(finding)
    if summaries:
        report.external = "; ".join(summaries)


def reconcile_recent() -> int:
    """The scheduled job: reconcile the previous and the current month.

    Logs each difference at error level (so it alarms) and returns how many there were.
    """
    now = timezone.now()
    current = periods.period_of(now)
    previous = periods.period_of(periods.month_start(now) - timedelta(days=1))
    found = 0
    for period in (previous, current):
        report = reconcile_period(period, now=now)
        for difference in report.differences:
            log.error("usage_reconciliation_difference", period=period, **asdict(difference))
        log.info(
            "usage_reconciliation_done",
            period=period,
            tenants=len(report.tenants),
            differences=len(report.differences),
            notes=len(report.notes),
        )
        found += len(report.differences)
    return found
