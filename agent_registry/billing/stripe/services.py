"""Stripe's rules: customers, plans as products and prices, checkout, cancel.

Every call to Stripe goes through ``client.py``. What Stripe creates is stored here
at once (its ids are the only way back); what a customer pays for is created in one
transaction with the Checkout Session, so a failing Stripe leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agent_registry.access import services as access_services
from agent_registry.access.models import AccessStatus, BillingChannelName
from agent_registry.agents.models import AgentInstance, AgentPlan, BillingModel
from agent_registry.billing.pricing import PlanPrice, exponent, price_period
from agent_registry.billing.stripe import client
from agent_registry.billing.stripe.errors import StripeFailure
from agent_registry.billing.stripe.models import (
    StripeCustomer,
    StripeMeter,
    StripeProduct,
    StripeSubscription,
    StripeSubscriptionStatus,
)
from agent_registry.core import periods
from agent_registry.core.errors import Conflict, NotFound, ValidationFailed
from agent_registry.core.runs import Run
from agent_registry.tenants.models import AgentProject, AgentTenant

log = structlog.get_logger(__name__)

# The usage dimensions that have a meter: dimension → (meter event name, display name).
METERS = {
    "api_calls": ("agent_registry_api_calls", "Agent Registry API calls"),
    "tokens": ("agent_registry_tokens", "Agent Registry tokens"),
    # A subscription plan's calls beyond its included quota: its own meter, so a
    # customer's usage-plan calls on ``api_calls`` are never billed at the overage price.
    "overage_calls": (
        "agent_registry_overage_calls",
        "Agent Registry calls beyond the included quota",
    ),
}
FEE = "fee"


def require_enabled() -> None:
    if not client.enabled():
        raise NotFound("Card payments (Stripe) are not configured.")


# --- customers ---------------------------------------------------------------------------


def customer_for(tenant: AgentTenant, *, email: str = "") -> StripeCustomer:
    """The tenant's Stripe customer, created the first time (idempotently)."""
    found = StripeCustomer.objects.filter(tenant=tenant).first()
    if found is not None:
        return found
    customer_id = client.customer_create(tenant_id=str(tenant.pk), name=tenant.name, email=email)
    try:
        with transaction.atomic():
            return StripeCustomer.objects.create(
                tenant=tenant, stripe_customer_id=customer_id, email=email
            )
    except IntegrityError:  # a concurrent first checkout stored it (the same id: same key)
        return StripeCustomer.objects.get(tenant=tenant)


# --- meters, products and prices ----------------------------------------------------------


def sync_meters() -> dict[str, StripeMeter]:
    """One meter per dimension, found by event name or created; stored once."""
    stored = {meter.dimension: meter for meter in StripeMeter.objects.all()}
    for dimension, (event_name, display_name) in METERS.items():
        if dimension in stored:
            continue
        meter_id = client.meter_find(event_name) or client.meter_create(
            event_name=event_name, display_name=display_name
        )
        stored[dimension], _ = StripeMeter.objects.get_or_create(
            dimension=dimension,
            defaults={"stripe_meter_id": meter_id, "event_name": event_name},
        )
    return stored


def _amount_text(amount: Decimal) -> str:
    """Minor units as Stripe's ``unit_amount_decimal`` (at most 12 decimal places)."""
    text = format(amount.quantize(Decimal("1e-12")).normalize(), "f")
    return text if text not in {"", "-0"} else "0"


def metered_dimensions(plan: AgentPlan) -> set[str]:
    """The meters ``plan``'s Stripe prices are metered on (none for a fee alone)."""
    dimensions = set()
    if (
        plan.billing_model == BillingModel.SUBSCRIPTION
        and plan.monthly_quota is not None
        and Decimal(plan.overage_price_per_call or 0)
    ):
        dimensions.add("overage_calls")
    if plan.billing_model == BillingModel.USAGE:
        if Decimal(plan.price_per_call):
            dimensions.add("api_calls")
        if Decimal(plan.price_per_1k_tokens):
            dimensions.add("tokens")
    return dimensions


def price_specs(plan: AgentPlan, meters: dict[str, StripeMeter]) -> dict[str, client.PriceSpec]:
    """What Stripe should charge for ``plan``: its monthly fee, and per call and per token
    as metered prices, in minor units, exactly the registry's prices (billing/pricing.py)."""
    scale = Decimal(10) ** exponent(plan.currency)
    key = f"agent_registry_plan_{plan.pk}"
    specs: dict[str, client.PriceSpec] = {}
    if plan.billing_model == BillingModel.SUBSCRIPTION and plan.price_cents:
        specs[FEE] = client.PriceSpec(f"{key}_fee", plan.currency, str(int(plan.price_cents)))
    # Overage: only the calls beyond the quota are reported (usage.py), by the registry's
    # calendar month: Stripe's line is the overage price times them, as the statement's
    # "Overage" line (billing/pricing.py), not a tier of Stripe's period.
    unit_amounts = {
        "overage_calls": Decimal(plan.overage_price_per_call or 0) * scale,
        "api_calls": Decimal(plan.price_per_call or 0) * scale,
        "tokens": Decimal(plan.price_per_1k_tokens or 0) * scale / 1000,
    }
    for dimension in sorted(metered_dimensions(plan)):
        specs[dimension] = client.PriceSpec(
            f"{key}_{dimension}",
            plan.currency,
            _amount_text(unit_amounts[dimension]),
            meters[dimension].stripe_meter_id,
        )
    return specs


def _meters_taken(tenant: AgentTenant, plan: AgentPlan) -> dict[str, StripeSubscription]:
    """The meters of ``plan`` that a live card subscription of the tenant already uses,
    each with that subscription.

    Stripe sums meter events per customer (one per tenant), and every subscription item
    priced on a meter bills that customer's whole sum: two live subscriptions on one
    meter would each be charged both's usage. So a tenant has at most one per meter.
    A subscription cancelled at period end is live until Stripe ends it.
    """
    wanted = metered_dimensions(plan)
    if not wanted:
        return {}
    live = (
        StripeSubscription.objects.filter(access__tenant=tenant)
        .exclude(access__status=AccessStatus.REVOKED)
        .select_related("access__plan__agent")
        .order_by("created_at")
    )
    taken: dict[str, StripeSubscription] = {}
    for subscription in live:
        for dimension in wanted & metered_dimensions(subscription.access.plan):
            taken.setdefault(dimension, subscription)
    return taken


def _meter_conflict(tenant: AgentTenant, taken: dict[str, StripeSubscription]) -> Conflict:
    """The 409 of a second card subscription on a meter: which one holds it, what to do."""
    holders = {sub.pk: sub for sub in taken.values()}
    named = "; ".join(
        f"subscription {sub.access_id} ({sub.access.plan.agent.agent_id} / {sub.access.plan.name}, "
        f"{'ends at its period end' if sub.cancel_at_period_end else sub.status})"
        for sub in holders.values()
    )
    return Conflict(
        f"Organisation '{tenant.slug}' already pays by card on the "
        f"{', '.join(sorted(taken))} meter: {named}. Stripe adds up a meter's usage per "
        "organisation and each card subscription on it would be charged all of it, so "
        "an organisation holds one card subscription per meter. To switch, cancel that "
        "subscription (POST /api/v1/billing/subscriptions/<id>/cancel/) and check out "
        "again once it has ended; or choose a plan with a flat fee only; or have an "
        "operator subscribe you (invoiced outside the card payments).",
        details={
            "plan": ["Another card subscription of this organisation uses the same meter."],
            "subscriptions": sorted(str(sub.access_id) for sub in holders.values()),
            "meters": sorted(taken),
        },
    )


@dataclass(frozen=True)
class PlanSync:
    product: StripeProduct
    created: list[str]
    deactivated: list[str]


def sync_plan(plan: AgentPlan) -> PlanSync:
    """The plan's product and prices in Stripe match the plan.

    A changed amount gets a new price that takes the lookup key over, and the old price
    is deactivated (Stripe's prices are immutable; subscriptions on it keep it).
    """
    specs = price_specs(plan, sync_meters())
    product = StripeProduct.objects.filter(plan=plan).first()
    if product is None:
        product_id = client.product_create(
            plan_id=str(plan.pk),
            name=f"{plan.agent.name} - {plan.name}",
            description=plan.description,
        )
        product, _ = StripeProduct.objects.get_or_create(
            plan=plan, defaults={"stripe_product_id": product_id}
        )
    prices = dict(product.prices)
    created, deactivated = [], []
    for line, spec in specs.items():
        current = prices.get(line)
        if current and current.get("signature") == spec.signature:
            continue
        price_id = client.price_create(
            product_id=product.stripe_product_id,
            spec=spec,
            replacing=(current or {}).get("id", ""),
        )
        created.append(price_id)
        if current and current.get("id") and current["id"] != price_id:
            client.price_deactivate(current["id"])
            deactivated.append(current["id"])
        prices[line] = {
            "id": price_id,
            "lookup_key": spec.lookup_key,
            "currency": spec.currency,
            "unit_amount_decimal": spec.unit_amount_decimal,
            "metered": bool(spec.meter_id),
            "signature": spec.signature,
        }
    for line in [line for line in prices if line not in specs]:
        client.price_deactivate(prices[line]["id"])
        deactivated.append(prices.pop(line)["id"])
    product.prices = prices
    product.synced_at = timezone.now()
    product.save(update_fields=["prices", "synced_at"])
    return PlanSync(product, created, deactivated)


# --- checkout -----------------------------------------------------------------------------


def first_month(plan: AgentPlan, product: StripeProduct, now: datetime) -> client.FirstMonth:
    """The fee for the rest of ``now``'s month, exactly as the statement prorates it
    (billing/pricing.py: whole days, the first one included). Stripe's cycle starts at
    the first of next month (``checkout_session_create``), so this is the only fee the
    first invoice carries, and each later invoice is one calendar month's."""
    first, after = periods.period_dates(periods.period_of(now))
    charge = price_period(
        PlanPrice.from_plan(plan),
        period_start=first,
        period_end=after,
        active_from=now.astimezone(UTC).date(),
        active_until=None,
        calls=0,
        tokens=0,
    )
    return client.FirstMonth(product.stripe_product_id, plan.currency, charge.total_minor)


@dataclass(frozen=True)
class CheckoutStarted:
    subscription: StripeSubscription
    api_key: str
    checkout_url: str


def checkout_start(
    *,
    agent: AgentInstance,
    plan: AgentPlan,
    project: AgentProject,
    actor=None,
    email: str = "",
    name: str = "",
) -> CheckoutStarted:
    """A subscription waiting for its first payment, its key, and a hosted Checkout
    Session to pay on. Stripe failing leaves nothing here (one transaction; the Stripe
    customer it may have created is found again by its idempotency key on a retry
    within Stripe's 24 hours)."""
    require_enabled()
    if not plan.is_paid:
        raise ValidationFailed(details={"plan": ["A free plan needs no payment; subscribe."]})
    taken = _meters_taken(project.tenant, plan)
    if taken:
        raise _meter_conflict(project.tenant, taken)
    with transaction.atomic():
        # The registry's own checks first (agent, project, already subscribed): a refused
        # checkout calls Stripe for nothing and leaves nothing behind.
        issued = access_services.access_create(
            agent=agent,
            plan=plan,
            project=project,
            name=name,
            actor=actor,
            status=AccessStatus.PENDING_PAYMENT,
            billing_channel=BillingChannelName.STRIPE,
        )
        access = issued.access
        customer = customer_for(project.tenant, email=email)
        product = sync_plan(plan).product
        if not product.prices:
            raise ValidationFailed(details={"plan": ["This plan has nothing to pay."]})
        metadata = {
            "access_id": str(access.pk),
            "tenant_id": str(project.tenant_id),
            "plan_id": str(plan.pk),
        }
        now = timezone.now()
        anchor = int(periods.next_month_start(now).timestamp())
        session = client.checkout_session_create(
            billing_cycle_anchor=anchor,
            # Paid by the end of the month its first line prices (Stripe allows 30
            # minutes to 24 hours): a session left open past midnight would start a
            # subscription after its anchor, with last month's fee.
            expires_at=min(
                max(anchor, int(now.timestamp()) + 31 * 60), int(now.timestamp()) + 24 * 3600
            ),
            first_month=first_month(plan, product, now),
            customer_id=customer.stripe_customer_id,
            price_ids=[
                (price["id"], bool(price.get("metered"))) for price in product.prices.values()
            ],
            client_reference_id=str(access.pk),
            metadata=metadata,
            success_url=settings.STRIPE_CHECKOUT_SUCCESS_URL,
            cancel_url=settings.STRIPE_CHECKOUT_CANCEL_URL,
            idempotency_key=f"checkout-{access.pk}",
        )
        subscription = StripeSubscription.objects.create(
            access=access, customer=customer, checkout_session_id=session.id
        )
    log.info("stripe.checkout_started", access_id=str(access.pk), session_id=session.id)
    return CheckoutStarted(subscription, issued.api_key, session.url)


# --- cancel --------------------------------------------------------------------------------


def subscription_cancel(subscription: StripeSubscription) -> StripeSubscription:
    """Cancel at the end of the paid period (the key works until then; Stripe's
    ``customer.subscription.deleted`` revokes it). A checkout never paid ends now."""
    require_enabled()
    if subscription.access.status == AccessStatus.REVOKED:
        raise Conflict("This subscription has ended.")
    if subscription.stripe_subscription_id is None:
        try:
            client.checkout_session_expire(subscription.checkout_session_id)
        except StripeFailure as exc:
            # 400: no longer open (paid or expired meanwhile); 404: Stripe has no such
            # session (never created, or another account's): nothing to expire.
            if exc.status not in {400, 404}:
                raise
        with transaction.atomic():
            access_services.access_revoke(access=subscription.access, reason="Checkout cancelled.")
            StripeSubscription.objects.filter(pk=subscription.pk).update(
                status=StripeSubscriptionStatus.CHECKOUT_EXPIRED
            )
        subscription.refresh_from_db()
        return subscription
    client.subscription_cancel_at_period_end(subscription.stripe_subscription_id)
    StripeSubscription.objects.filter(pk=subscription.pk).update(
        cancel_at_period_end=True, updated_at=timezone.now()
    )
    subscription.refresh_from_db()
    return subscription


# --- all plans -----------------------------------------------------------------------------


@dataclass
class PlansRun(Run):
    synced: int = 0
    prices_created: int = 0
    prices_deactivated: int = 0

    def summary(self) -> str:
        return (
            f"plans {self.synced}, prices created {self.prices_created}, "
            f"deactivated {self.prices_deactivated}, errors {len(self.errors)}"
        )


def sync_plans(plans=None, *, progress=None) -> PlansRun:
    """Every active paid plan (or ``plans``) as a product with its prices, and the meters."""
    run = PlansRun()
    sync_meters()
    rows = plans if plans is not None else AgentPlan.objects.filter(is_active=True)
    for plan in rows.exclude(billing_model=BillingModel.FREE).select_related("agent"):
        try:
            result = sync_plan(plan)
        except StripeFailure as exc:
            run.errors.append(f"plan {plan.pk}: {exc}")
            continue
        run.synced += 1
        run.prices_created += len(result.created)
        run.prices_deactivated += len(result.deactivated)
        if progress is not None:
            progress(
                f"plan {plan.pk} ({plan.name}): +{len(result.created)} -{len(result.deactivated)}"
            )
    return run
