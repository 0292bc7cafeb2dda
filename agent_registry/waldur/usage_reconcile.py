"""Reconciliation with Waldur: what it holds for each Waldur-billed subscription's month
against what the statement says (``usage_push.wanted``), per resource and component.

Read-only on both sides. Registered with billing's reconciliation
(``billing/reconciliation/external.py``) in ``WaldurConfig.ready``, so
``reconcile_usage`` and its daily job include it whenever ``WALDUR_API_URL`` is set.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from agent_registry.billing.reconciliation.external import ExternalResult
from agent_registry.billing.reconciliation.report import Difference, Finding, Note
from agent_registry.tenants.models import AgentTenant
from agent_registry.waldur.client import client_from_settings, enabled
from agent_registry.waldur.errors import WaldurError
from agent_registry.waldur.models import WaldurUsageReport
from agent_registry.waldur.usage_push import ZERO, wanted

# The push runs hourly: what Waldur holds may trail a statement refreshed since for
# this long before reconciliation calls it drift.
PUSH_LAG = timedelta(hours=2)


def reconcile_waldur(period: str, now: datetime, tenant_slug: str | None) -> ExternalResult | None:
    """What Waldur holds for each Waldur-billed subscription's month against what its
    statement says, per resource and component; read-only. None when Waldur is off.
    (Registered with billing's reconciliation in ``WaldurConfig.ready``.)"""
    if not enabled():
        return None
    tenant_id = None
    if tenant_slug is not None:
        tenants = AgentTenant.all_objects.filter(slug=tenant_slug)
        tenant_id = tenants.values_list("pk", flat=True).first()
        if tenant_id is None:
            return ExternalResult("waldur: no such tenant")
    items = wanted(period, tenant_id=tenant_id)
    sent = {
        str(r.access_id): r
        for r in WaldurUsageReport.objects.filter(
            period=period, access_id__in=[w.access.pk for w in items]
        )
    }
    first_day = date.fromisoformat(f"{period}-01")
    findings: list[Finding] = []
    compared = differences = 0
    with client_from_settings() as client:
        for item in items:
            access, slug = item.access, item.access.tenant.slug
            resource = item.resource_uuid
            try:
                held = {u.type: u.amount for u in client.component_usages(resource, first_day)}
            except WaldurError as exc:
                findings.append(
                    Note(slug, str(access.pk), "waldur", f"could not read {resource}: {exc}")
                )
                continue
            compared += 1
            report = sent.get(str(access.pk))
            for kind, amount in item.amounts.items():
                theirs = held.get(kind, Decimal(0))
                if Decimal(amount) == theirs:
                    continue
                last = (report.sent or {}).get(kind, ZERO) if report else ZERO
                if _trailing(report, last, theirs, now):
                    findings.append(
                        Note(
                            slug,
                            str(access.pk),
                            "waldur",
                            f"{resource} {kind} {period}: Waldur holds {theirs:.2f} as last "
                            f"sent, the statement says {amount} since; the next push sends it",
                        )
                    )
                    continue
                differences += 1
                findings.append(
                    Difference(
                        tenant=slug,
                        subscription=str(access.pk),
                        check="waldur",
                        compared=f"statement vs Waldur resource {resource} {kind} {period}",
                        expected={"amount": amount, "last_sent": last},
                        actual={"amount": f"{theirs:.2f}"},
                        advice=_advice(period, last, theirs),
                    )
                )
    summary = f"waldur: {compared} resources compared, {differences} differences"
    return ExternalResult(summary, findings)


def _trailing(
    report: WaldurUsageReport | None, last_sent: str, theirs: Decimal, now: datetime
) -> bool:
    """Waldur holds what the last push sent, that push was recent and did not fail: the
    statement moved on since (the hourly refresh), an expected lag, not drift."""
    return (
        report is not None
        and not report.error
        and Decimal(last_sent) == theirs
        and now - report.updated_at < PUSH_LAG
    )


def _advice(period: str, last_sent: str, theirs: Decimal) -> str:
    if Decimal(last_sent) == theirs:
        return f"not pushed yet: run waldur_push_usage --period {period} (or wait an hour)"
    return (
        f"Waldur holds what the registry never sent (changed in Waldur?): "
        f"run waldur_push_usage --period {period} to overwrite it"
    )
