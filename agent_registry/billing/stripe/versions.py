"""A plan's new version reaches a Stripe subscription exactly when the registry's
statement prices it: from the next calendar month (docs/billing.md "Plan versions").

Stripe's periods are the registry's months (checkout anchors the cycle at the first of
next month, ``services.checkout_start``), and Stripe's renewal invoice at the start of
month M carries two things: the fee for M, in advance, and the metered usage of M-1,
in arrears. The registry prices M on the version in force when M began
(``billing/cycles/lines.py PlanVersions``), so:

- the **fee** item is put on the price of the version in force for the period after
  Stripe's current one, as soon as that version exists, without proration: the period
  already paid keeps its fee, the next renewal charges the new one;
- the **metered** items are put on the prices of the version in force for Stripe's
  current period, once Stripe has started it (its renewal has invoiced the last
  month's usage at the old prices), before any usage of the new month is recorded for
  Stripe (``usage.report_usage`` runs this first and holds back the month's usage of a
  subscription it could not move: Stripe bills a metered price only for usage after
  the item got it).

Stripe's items are read first and only what differs is changed, each change with an
idempotency key naming it: a re-run changes nothing, a retried request is the same
request, and Stripe down leaves the move for the next run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from django.db.models import Q

from agent_registry.access.models import AccessStatus
from agent_registry.agents.models import AgentPlan
from agent_registry.billing.cycles.lines import PlanVersions
from agent_registry.billing.stripe import client, services
from agent_registry.billing.stripe.errors import StripeFailure
from agent_registry.billing.stripe.models import StripeMeter, StripeSubscription
from agent_registry.core import periods
from agent_registry.core.runs import Run

log = structlog.get_logger(__name__)

ENDED = ("canceled", "incomplete_expired")


@dataclass
class MoveRun(Run):
    checked: int = 0
    items_changed: int = 0
    # access ids whose metered items may not be on their period's prices yet
    held: set[Any] = field(default_factory=set)

    def summary(self) -> str:
        return (
            f"subscriptions {self.checked}, items changed {self.items_changed}, "
            f"errors {len(self.errors)}"
        )


def _stripe_period(obj: dict[str, Any]) -> str | None:
    """The registry month Stripe's current period is (its start's month)."""
    starts = [
        item.get("current_period_start")
        for item in (obj.get("items") or {}).get("data") or []
        if isinstance(item.get("current_period_start"), int)
    ]
    if not starts:
        return None
    return periods.period_of(datetime.fromtimestamp(min(starts), UTC))


def _line_of(item: dict[str, Any], dimension_of_meter: dict[str, str]) -> str | None:
    recurring = (item.get("price") or {}).get("recurring") or {}
    if recurring.get("usage_type") == "metered":
        return dimension_of_meter.get(str(recurring.get("meter")))
    return services.FEE


def _prices_of(plan: AgentPlan) -> dict[str, dict[str, Any]]:
    product = services.StripeProduct.objects.filter(plan=plan).first()
    if product is None or not product.prices:
        product = services.sync_plan(plan).product  # a version never checked out yet
    return dict(product.prices)


def wanted_prices(
    sub: StripeSubscription, stripe_period: str, versions: PlanVersions
) -> dict[str, tuple[str, bool]]:
    """line → (price id, metered) the subscription's items should be on now."""
    access = sub.access
    metered_plan = versions.in_force(access, stripe_period)
    fee_plan = versions.in_force(access, periods.add_months(stripe_period, 1))
    wanted: dict[str, tuple[str, bool]] = {}
    fee_prices = _prices_of(fee_plan)
    if services.FEE in fee_prices:
        wanted[services.FEE] = (fee_prices[services.FEE]["id"], False)
    for line, price in _prices_of(metered_plan).items():
        if price.get("metered"):
            wanted[line] = (price["id"], True)
    return wanted


class FeeInvoicedLate(StripeFailure):
    """Stripe renewed before the fee item moved: the current month's fee was charged
    on another version than the statement's (the operator settles the difference)."""


def move_subscription(
    sub: StripeSubscription,
    versions: PlanVersions,
    dimension_of_meter: dict[str, str],
    month: str | None = None,
) -> tuple[int, bool]:
    """Put ``sub``'s Stripe items on the prices the registry bills: the changes made,
    and whether ``month``'s usage must wait (Stripe has not started the month yet, and
    its metered items are not on the month's prices: they move once it has).
    Raises ``FeeInvoicedLate`` (after moving) if Stripe already charged this month's
    fee on a price that is neither this month's version's nor the next one's."""
    assert sub.stripe_subscription_id is not None  # noqa: S101 (filtered by the caller)
    obj = client.subscription_retrieve(sub.stripe_subscription_id)
    stripe_period = _stripe_period(obj)
    if obj.get("status") in ENDED or stripe_period is None:
        return 0, False
    wanted = wanted_prices(sub, stripe_period, versions)
    have: dict[str, dict[str, Any]] = {}
    extra: list[dict[str, Any]] = []
    for item in obj["items"]["data"]:
        line = _line_of(item, dimension_of_meter)
        if line is None:
            continue  # a meter the registry does not know: not ours to change
        if line in have:
            extra.append(item)  # a second item on one line: Stripe would bill it twice
        else:
            have[line] = item
    charged = (have.get(services.FEE) or {}).get("price", {}).get("id")
    this_fee = _prices_of(versions.in_force(sub.access, stripe_period)).get(services.FEE, {})
    late = (
        charged is not None
        and services.FEE in wanted
        and charged not in {wanted[services.FEE][0], this_fee.get("id")}
    )
    wait = False
    if month is not None and stripe_period < month:
        due = _prices_of(versions.in_force(sub.access, month))
        wait = any(
            (item.get("price") or {}).get("id") != due.get(line, {}).get("id")
            for line, item in have.items()
            if line != services.FEE
        )
    changed = 0
    for line, (price_id, metered) in wanted.items():
        item = have.pop(line, None)
        if item is None:
            client.subscription_item_create(sub.stripe_subscription_id, price_id, metered=metered)
        elif (item.get("price") or {}).get("id") != price_id:
            client.subscription_item_update(str(item["id"]), price_id)
        else:
            continue
        changed += 1
        log.info("stripe.item_moved", subscription=str(sub), line=line, price=price_id)
    for item in [*have.values(), *extra]:  # lines the version in force no longer has
        client.subscription_item_delete(str(item["id"]))
        changed += 1
    if late:
        log.warning("stripe.fee_invoiced_late", subscription=str(sub), period=stripe_period)
        raise FeeInvoicedLate(
            f"the fee of {stripe_period} was invoiced by Stripe on price {charged}, not "
            f"on the version the statement charges ({this_fee.get('id')}); moved now"
        )
    return changed, wait


def move_prices(subscriptions=None, *, month: str | None = None, progress=None) -> MoveRun:
    """Every live card subscription's items on the prices of the versions in force;
    ``held``: those whose usage of ``month`` (the registry's current one) must wait."""
    run = MoveRun()
    rows = subscriptions if subscriptions is not None else StripeSubscription.objects.all()
    rows = (
        rows.filter(stripe_subscription_id__isnull=False)
        # Only a plan with versions can have moved (no call to Stripe for the others).
        .filter(Q(access__plan__version__gt=1) | Q(access__plan__next_version__isnull=False))
        .exclude(access__status=AccessStatus.REVOKED)
        .select_related("access__plan")
        .order_by("created_at")
    )
    versions = PlanVersions()
    dimension_of_meter = {m.stripe_meter_id: m.dimension for m in StripeMeter.objects.all()}
    for sub in rows:
        run.checked += 1
        try:
            changed, wait = move_subscription(sub, versions, dimension_of_meter, month)
        except FeeInvoicedLate as exc:  # moved; the month's fee needs the operator
            run.errors.append(f"{sub}: {exc}")
            continue
        except StripeFailure as exc:
            run.errors.append(f"{sub}: prices not moved: {exc}")
            run.held.add(sub.access_id)
            continue
        run.items_changed += changed
        if wait:
            run.held.add(sub.access_id)
        if progress is not None and changed:
            progress(f"{sub}: {changed} item(s) moved")
    return run
