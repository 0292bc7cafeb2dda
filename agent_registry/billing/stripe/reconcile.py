"""``reconcile_usage``'s Stripe check: the meter totals recorded for Stripe against the
registry's own month figures, per subscription and meter (read-only).

Registered with billing's reconciliation (``reconciliation/external.py``) in
``BillingConfig.ready``; with Stripe off it reports nothing.
"""

from __future__ import annotations

from datetime import datetime

from agent_registry.billing.reconciliation.external import ExternalResult
from agent_registry.billing.reconciliation.report import Difference, Note
from agent_registry.billing.stripe import client, usage
from agent_registry.billing.stripe.models import StripeSubscription
from agent_registry.tenants.models import AgentTenant


def reconcile_stripe(period: str, now: datetime, tenant_slug: str | None) -> ExternalResult | None:
    if not client.enabled():
        return None
    tenant_id = None
    if tenant_slug is not None:
        tenant_id = (
            AgentTenant.all_objects.filter(slug=tenant_slug).values_list("pk", flat=True).first()
        )
        if tenant_id is None:
            return ExternalResult("stripe: no such tenant")
    drift = usage.reconcile_usage(period, tenant_id=tenant_id)
    subscriptions = StripeSubscription.objects.filter(stripe_subscription_id__isnull=False)
    if tenant_id is not None:
        subscriptions = subscriptions.filter(access__tenant_id=tenant_id)
    findings: list[Difference | Note] = [
        Difference(
            tenant=item.access.tenant.slug,
            subscription=str(item.access.pk),
            check="stripe",
            compared=f"month figures vs Stripe meter totals recorded, {item.dimension} {period}",
            expected={"total": item.registry},
            actual={"recorded": item.recorded},
            advice="run stripe_report_usage (it records the growth and sends the backlog)",
        )
        for item in drift
    ]
    return ExternalResult(
        f"stripe: {subscriptions.count()} subscriptions compared, {len(findings)} differences",
        findings,
    )
