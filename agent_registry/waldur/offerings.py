"""The Waldur offering a published agent becomes, and prices that invoice what we bill.

Pure: registry objects in, Waldur request bodies out (field names of waldur-api-client
8.1.3's request models); no HTTP, no client. The Waldur client sends them.

**Components.** Every offering has three ``usage`` components and, when one of its
active plans has a monthly fee, one ``fixed`` component:

=================  =========  ============  ===========================================
type               billing    measured in   amount reported for a subscription's month
=================  =========  ============  ===========================================
``api_calls``      usage      calls         billable calls not covered by a fee: all of
                                            them on usage and free plans, those beyond
                                            the included quota on subscription plans
``input_tokens``   usage      100 tokens    billable input tokens / 100
``output_tokens``  usage      100 tokens    billable output tokens / 100
``monthly_fee``    fixed      month         (not reported: Waldur invoices it itself)
=================  =========  ============  ===========================================

**Prices** (``plan_prices``), per plan: usage plans price ``api_calls`` at
``price_per_call`` and both token components at ``price_per_1k_tokens / 10`` (per 100
tokens); subscription plans price ``monthly_fee`` at the fee and ``api_calls`` at the
overage price (0 without one); free plans price nothing. Every other price is 0.

**Why these units.** Waldur multiplies the reported amount by the component's price,
linearly, and keeps reported amounts with 2 decimal places and prices with at least 7
(mastermind's price fields; ``decimal_places=7`` in its older releases). Calls are whole numbers, so
``calls * price_per_call`` (6 places) is exact. Tokens in hundreds are exact in 2
decimal places (``tokens / 100``) and their price ``price_per_1k_tokens / 10`` has at
most 7 places, so ``amount * price = tokens * price_per_1k_tokens / 1000``: the
registry's exact line. Per token (9 places) or per 1k tokens (3-place amounts) would
each lose precision. Included calls then overage, which Waldur cannot express (it bills
linearly from zero), is reported as the overage calls only.

**Rounding.** The registry rounds each line once, half up, in minor units
(``billing/pricing.py``). Waldur prices each invoice item as
``quantize_price(unit_price * quantity)`` (mastermind ``invoices/models.py``
``InvoiceItem._price``), and ``quantize_price`` rounds *up* to 0.01 (``ROUND_UP``); a
usage item's quantity is the reported amount as is for ``Marketplace.Slurm`` and
``Marketplace.Basic`` offerings (only ``SlurmInvoices.SlurmPackage`` and OpenStack
tenants convert it, so those types are refused). Since ``amount * price`` is the
registry's exact line, each Waldur line is the registry's line or one cent above it
(when the exact amount is less than half a cent above a whole cent). Tokens are one
registry line and two Waldur lines, so up to two cents above: one cent per Waldur line.
``waldur_line`` is that rule; the equivalence test also checks half up, under which
only the split token line can differ (by one cent). A currency without minor units
(JPY) is still kept to 0.01 by Waldur: its line is the amount to 0.01, within a yen of
the registry's line.

**The input/output split.** Billable tokens are counted in total only
(``billable_tokens``); when every token of the month was billable the split is the
month's own (``tokens_input``, ``tokens_output``), otherwise the billable tokens are
shared in the month's input/output proportion (input rounded down, the rest output).
The two amounts always add up to the billable tokens, so the price does not move.

**Not exact: the monthly fee of a partial month.** A ``fixed`` component is invoiced by
Waldur itself, prorated by its own rule over the Waldur resource's lifetime: for a plan
unit of a month, ``quantize_price(days used / days in month)``, a factor rounded up to
0.01 of a month. The registry prorates by exact days (``fee * active / days``). A whole
month is exact (factor 1); a partial month (first or last of a subscription) can differ
by up to 1% of the fee plus a cent (a $19.00 plan from Nov 20: registry 6.97, Waldur
0.37 * 19.00 = 7.03), and Waldur counts from the order's completion, not the
subscription's creation. No price makes this exact: Waldur's proration factor is
rounded before it is multiplied.

**Re-publishing.** ``offering_changes(existing, agent, …)`` compares the offering as
Waldur returns it (``ProviderOfferingDetails``) with the agent and returns the calls
that bring it up to date; the same offering (``backend_id`` = the agent's
``agent_id``) is always updated, never a second one made. No difference, no call: texts
are compared trimmed (DRF trims what it stores), prices as decimals, a plan's future
prices (Waldur's place for new prices of a plan with resources) over its prices, and an
absent price as 0. A price change is a new plan version in the registry, so it reaches
Waldur as a new plan and the old one archived, never as a re-priced plan.
Applied to a freshly created offering it yields the prices, the fee quantities and
``activate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple, Protocol

from agent_registry.billing.pricing import FREE, SUBSCRIPTION, USAGE, PlanPrice, exponent

API_CALLS = "api_calls"
INPUT_TOKENS = "input_tokens"
OUTPUT_TOKENS = "output_tokens"
MONTHLY_FEE = "monthly_fee"
USAGE_COMPONENTS = (API_CALLS, INPUT_TOKENS, OUTPUT_TOKENS)
TOKENS_PER_UNIT = 100
# Waldur keeps component amounts with 2 decimal places and prices with 7.
AMOUNT_PLACES = Decimal("0.01")
PRICE_PLACES = Decimal("0.0000001")
CENT = Decimal("0.01")
# The overview fields a re-publish keeps in step (OfferingOverviewUpdateRequest).
OVERVIEW_FIELDS = ("name", "description", "full_description", "getting_started", "access_url")
# Waldur's offering description is short; the full text goes to full_description.
DESCRIPTION_MAX = 500
PLAN_UNIT = "month"
# Offering types whose reported usage Waldur converts before invoicing it (mastermind
# marketplace ``convert_quantity``): our amounts would be billed wrong.
CONVERTING_TYPES = frozenset({"SlurmInvoices.SlurmPackage", "OpenStack.Tenant"})
# Component fields compared on re-publish (what we set; Waldur adds more).
_COMPONENT_FIELDS = ("billing_type", "name", "description", "measured_unit", "unit_factor")


class UsageLike(Protocol):
    """A subscription's month of usage: ``billing.figures.UsageFigures`` fits."""

    billable_calls: int
    tokens_input: int
    tokens_output: int
    tokens_total: int
    billable_tokens: int


class Change(NamedTuple):
    """One call to Waldur. ``plan`` is the AgentPlan id (the Waldur plan's
    ``backend_id``) for calls on a plan, empty for calls on the offering."""

    action: str
    payload: dict[str, Any]
    plan: str = ""


# --- Components and prices ------------------------------------------------------------


def _price_of(plan: Any) -> PlanPrice:
    return plan if isinstance(plan, PlanPrice) else PlanPrice.from_plan(plan)


def _active_plans(agent: Any) -> list[Any]:
    return list(agent.plans.filter(is_active=True).order_by("display_order", "name", "version"))


def _fee_main(price: PlanPrice) -> Decimal:
    return Decimal(price.monthly_fee_minor).scaleb(-exponent(price.currency))


def has_fee(plan: Any) -> bool:
    price = _price_of(plan)
    return price.billing_model == SUBSCRIPTION and price.monthly_fee_minor > 0


def component_types(plans: Iterable[Any]) -> tuple[str, ...]:
    """The offering's component types: the usage three, and the fee if a plan has one."""
    return USAGE_COMPONENTS + ((MONTHLY_FEE,) if any(has_fee(p) for p in plans) else ())


def components(plans: Iterable[Any]) -> list[dict[str, Any]]:
    """``OfferingComponentRequest`` bodies for an offering with these plans."""
    out: list[dict[str, Any]] = [
        {
            "type": API_CALLS,
            "name": "API calls",
            "description": "Billable calls not covered by a monthly fee.",
            "measured_unit": "calls",
            "billing_type": "usage",
            "unit_factor": 1,
        },
        {
            "type": INPUT_TOKENS,
            "name": "Input tokens",
            "description": "Billable input (prompt) tokens, in hundreds.",
            "measured_unit": "100 tokens",
            "billing_type": "usage",
            "unit_factor": TOKENS_PER_UNIT,
        },
        {
            "type": OUTPUT_TOKENS,
            "name": "Output tokens",
            "description": "Billable output (completion) tokens, in hundreds.",
            "measured_unit": "100 tokens",
            "billing_type": "usage",
            "unit_factor": TOKENS_PER_UNIT,
        },
    ]
    if MONTHLY_FEE in component_types(plans):
        out.append(
            {
                "type": MONTHLY_FEE,
                "name": "Monthly fee",
                "description": "The plan's monthly subscription fee.",
                "measured_unit": "month",
                "billing_type": "fixed",
                "unit_factor": 1,
            }
        )
    return out


def plan_prices(plan: Any, types: Iterable[str] = USAGE_COMPONENTS) -> dict[str, Decimal]:
    """Each component's price on ``plan`` (main currency unit), for ``types``."""
    price = _price_of(plan)
    exponent(price.currency)  # an unknown currency is refused here, not in Waldur
    prices = dict.fromkeys(types, Decimal(0))
    if price.billing_model == USAGE:
        prices[API_CALLS] = price.price_per_call
        per_unit = price.price_per_1k_tokens * TOKENS_PER_UNIT / 1000
        prices[INPUT_TOKENS] = prices[OUTPUT_TOKENS] = per_unit
    elif price.billing_model == SUBSCRIPTION:
        if price.included_calls is not None:
            prices[API_CALLS] = price.overage_price_per_call
        if MONTHLY_FEE in prices:
            prices[MONTHLY_FEE] = _fee_main(price)
    elif price.billing_model != FREE:
        raise ValueError(f"unknown billing model {price.billing_model!r}")
    for kind, value in prices.items():
        if value != value.quantize(PRICE_PLACES):
            raise ValueError(f"{kind} price {value} has more than 7 decimal places")
    return {kind: value.quantize(PRICE_PLACES) for kind, value in prices.items()}


def prices_payload(plan: Any, types: Iterable[str] = USAGE_COMPONENTS) -> dict[str, Any]:
    """The body of ``POST /api/marketplace-plans/{uuid}/update_prices/``."""
    prices = plan_prices(plan, types)
    return {"prices": {kind: f"{value:f}" for kind, value in prices.items()}}


def quotas_payload(types: Iterable[str]) -> dict[str, Any] | None:
    """The body of ``update_quotas/``: one fee a month (Waldur bills price * amount)."""
    return {"quotas": {MONTHLY_FEE: 1}} if MONTHLY_FEE in tuple(types) else None


def _money(value: Decimal, currency: str) -> str:
    return str(value.quantize(Decimal(1).scaleb(-exponent(currency))))


def plan_summary(plan: Any) -> str:
    """One line of prices for the plan's Waldur description."""
    price = _price_of(plan)
    cur = price.currency
    if price.billing_model == FREE:
        return "Free."
    if price.billing_model == USAGE:
        parts = []
        if price.price_per_call:
            parts.append(f"{price.price_per_call.normalize()} {cur} per call")
        if price.price_per_1k_tokens:
            parts.append(f"{price.price_per_1k_tokens.normalize()} {cur} per 1,000 tokens")
        return ("Pay per use: " + ", ".join(parts) + ".") if parts else "Free."
    text = f"{_money(_fee_main(price), cur)} {cur} a month"
    if price.included_calls is not None:
        text += f", {price.included_calls} calls included"
        if price.overage_price_per_call:
            text += f", then {price.overage_price_per_call.normalize()} {cur} per call"
    return text + "."


def plan_payload(plan: Any) -> dict[str, Any]:
    """A ``BaseProviderPlanRequest`` body (``offering`` added when posted on its own)."""
    description = plan_summary(plan)
    if plan.description:
        description = f"{description}\n\n{plan.description}"
    return {
        "name": plan.name,
        "description": description,
        "unit": PLAN_UNIT,
        "unit_price": "0",
        "backend_id": str(plan.id),
    }


def plan_payloads(agent: Any) -> list[dict[str, Any]]:
    """One Waldur plan per active AgentPlan."""
    return [plan_payload(plan) for plan in _active_plans(agent)]


# --- Usage: what is reported, and what Waldur invoices for it -------------------------


def _split_tokens(usage: UsageLike) -> tuple[int, int]:
    billable = max(usage.billable_tokens, 0)
    if billable == usage.tokens_total:
        return usage.tokens_input, usage.tokens_output
    if usage.tokens_total <= 0:
        return billable, 0
    tokens_input = billable * max(usage.tokens_input, 0) // usage.tokens_total
    tokens_input = min(tokens_input, billable)
    return tokens_input, billable - tokens_input


def usage_amounts(usage: UsageLike, plan: Any) -> dict[str, Decimal]:
    """The amounts to report for a subscription's month (``set_usage``), 2 places each.

    Month-to-date totals: Waldur overwrites the month's value, so re-sending is safe.
    """
    price = _price_of(plan)
    calls = max(usage.billable_calls, 0)
    if price.billing_model == SUBSCRIPTION:
        included = price.included_calls
        calls = 0 if included is None else max(calls - included, 0)
    tokens_input, tokens_output = _split_tokens(usage)
    amounts = {
        API_CALLS: Decimal(calls),
        INPUT_TOKENS: Decimal(tokens_input) / TOKENS_PER_UNIT,
        OUTPUT_TOKENS: Decimal(tokens_output) / TOKENS_PER_UNIT,
    }
    return {kind: value.quantize(AMOUNT_PLACES) for kind, value in amounts.items()}


def usage_payload(usage: UsageLike, plan: Any) -> list[dict[str, str]]:
    """The ``usages`` list of ``POST /api/marketplace-component-usages/set_usage/``."""
    return [
        {"type": kind, "amount": f"{amount:f}"}
        for kind, amount in usage_amounts(usage, plan).items()
    ]


def waldur_line(amount: Decimal, price: Decimal, *, rounding: str = ROUND_UP) -> Decimal:
    """What Waldur invoices for one component: amount * price, rounded up to 0.01 as
    mastermind's ``quantize_price`` does (``rounding`` to model another rule)."""
    return (amount.quantize(AMOUNT_PLACES) * price).quantize(CENT, rounding=rounding)


def waldur_fee_factor(active_days: int, month_days: int) -> Decimal:
    """Waldur's share of a month for a ``month`` plan unit: 1, or days/month rounded up
    to 0.01 (mastermind ``InvoiceItem.get_factor``). Documents the partial-month gap."""
    if active_days >= month_days:
        return Decimal(1)
    return (Decimal(active_days) / month_days).quantize(CENT, rounding=ROUND_UP)


# --- The offering ---------------------------------------------------------------------


def gateway_url(agent: Any, public_base_url: str) -> str:
    return f"{public_base_url.rstrip('/')}/api/v1/agents/{agent.agent_id}/invoke/"


def getting_started(agent: Any, public_base_url: str) -> str:
    """Markdown: the gateway URL and an OpenAI SDK example."""
    base = public_base_url.rstrip("/")
    return f"""## Getting started

Your subscription's API key is shown in Waldur once the order is done. Send it as
`Authorization: Bearer <key>` (or `X-API-Key: <key>`).

**Gateway URL:** `{gateway_url(agent, public_base_url)}`

```bash
curl -X POST {gateway_url(agent, public_base_url)} \\
  -H "Authorization: Bearer $AGENT_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{{"input": "Hello"}}'
```

**OpenAI-compatible API** (`{base}/v1`, model `{agent.agent_id}`), with the OpenAI SDK:

```python
from openai import OpenAI

client = OpenAI(base_url="{base}/v1", api_key="<your API key>")
reply = client.chat.completions.create(
    model="{agent.agent_id}",
    messages=[{{"role": "user", "content": "Hello"}}],
)
print(reply.choices[0].message.content)
```"""


def short_description(agent: Any) -> str:
    text = (agent.description or agent.name).strip()
    first = text.split("\n\n", 1)[0].strip()
    return first if len(first) <= DESCRIPTION_MAX else first[: DESCRIPTION_MAX - 1] + "…"


def overview(agent: Any, public_base_url: str) -> dict[str, str]:
    """The texts kept in step on every publish (``update_overview/``)."""
    return {
        "name": agent.name,
        "description": short_description(agent),
        "full_description": agent.description or agent.name,
        "getting_started": getting_started(agent, public_base_url),
        "access_url": gateway_url(agent, public_base_url),
    }


def offering_payload(
    agent: Any,
    *,
    category_url: str,
    provider_customer_url: str,
    offering_type: str,
    public_base_url: str,
) -> dict[str, Any]:
    """The body of ``POST /api/marketplace-provider-offerings/`` (``OfferingCreateRequest``).

    Plans start without prices in Waldur: follow with ``offering_changes`` on the
    created offering (prices, fee quantities, ``activate``).
    """
    if offering_type in CONVERTING_TYPES:
        raise ValueError(
            f"Waldur converts the usage of {offering_type!r} offerings; use Marketplace.Slurm"
        )
    plans = _active_plans(agent)
    return {
        **overview(agent, public_base_url),
        "category": category_url,
        "customer": provider_customer_url,
        "type": offering_type,
        "backend_id": agent.agent_id,
        "shared": True,
        "billable": True,
        "components": components(plans),
        "plans": [plan_payload(plan) for plan in plans],
    }


# --- Re-publishing: the diff ----------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _text(value: Any) -> str:
    # DRF trims surrounding whitespace of every text it stores, and browsers send CRLF.
    return str(value or "").replace("\r\n", "\n").strip()


def _same(ours: Any, theirs: Any) -> bool:
    """Equal as Waldur shows it: numbers as decimals, texts trimmed, absent text empty."""
    if isinstance(ours, int | Decimal) and not isinstance(ours, bool):
        return _decimal(theirs) == ours
    if isinstance(ours, str):
        return _text(theirs) == _text(ours)
    return bool(theirs == ours)


def _component_changes(existing: Mapping[str, Any], plans: list[Any]) -> list[Change]:
    theirs = {c.get("type"): c for c in existing.get("components") or []}
    changes = []
    for ours in components(plans):
        current = theirs.get(ours["type"])
        if current is None:
            changes.append(Change("create_offering_component", ours))
        elif not all(_same(ours[f], current.get(f)) for f in _COMPONENT_FIELDS):
            changes.append(Change("update_offering_component", {"uuid": current["uuid"], **ours}))
    # A component no plan prices any more stays: its usage history is Waldur's record.
    return changes


def _plan_changes(
    existing: Mapping[str, Any], plans: list[Any], types: tuple[str, ...]
) -> list[Change]:
    theirs = {p.get("backend_id"): p for p in existing.get("plans") or [] if p.get("backend_id")}
    ours_ids = {str(plan.id) for plan in plans}
    changes: list[Change] = []
    quotas = quotas_payload(types)
    for plan in plans:
        body = plan_payload(plan)
        current = theirs.get(body["backend_id"])
        if current is None:
            changes.append(
                Change(
                    "create_plan", {**body, "offering": existing.get("url", "")}, body["backend_id"]
                )
            )
            current = {}
        elif any(not _same(body[f], current.get(f)) for f in ("name", "description")):
            changes.append(
                Change(
                    "update_plan",
                    {f: body[f] for f in ("name", "description")},
                    body["backend_id"],
                )
            )
        wanted = plan_prices(plan, types)
        # A plan with resources takes new prices as future prices; an absent price is 0.
        have = {**(current.get("prices") or {}), **(current.get("future_prices") or {})}
        if any(_decimal(have.get(kind, 0)) != value for kind, value in wanted.items()):
            changes.append(Change("update_prices", prices_payload(plan, types), body["backend_id"]))
        if quotas and has_fee(plan):
            have_quotas = current.get("quotas") or {}
            if _decimal(have_quotas.get(MONTHLY_FEE)) != 1:
                changes.append(Change("update_quotas", quotas, body["backend_id"]))
    for backend_id, current in theirs.items():
        if backend_id not in ours_ids and not current.get("archived"):
            changes.append(Change("archive_plan", {}, backend_id))
    return changes


def offering_changes(
    existing: Mapping[str, Any],
    agent: Any,
    *,
    public_base_url: str,
    category_url: str | None = None,
    activate: bool = True,
) -> list[Change]:
    """The calls that make ``existing`` (the offering as Waldur returns it) the agent's.

    Order matters and is the order to send them in: overview, category, components,
    plans (created, renamed, priced, fee quantities, archived), then ``activate`` for a
    Draft offering. An up-to-date offering gives ``[]``.
    """
    if existing.get("backend_id") not in (None, "", agent.agent_id):
        raise ValueError(
            f"offering {existing.get('uuid')} belongs to {existing.get('backend_id')!r}, "
            f"not {agent.agent_id!r}"
        )
    plans = _active_plans(agent)
    changes: list[Change] = []
    wanted = overview(agent, public_base_url)
    if existing.get("backend_id") != agent.agent_id or any(
        not _same(value, existing.get(field)) for field, value in wanted.items()
    ):
        changes.append(Change("update_overview", {**wanted, "backend_id": agent.agent_id}))
    if category_url and existing.get("category") != category_url:
        changes.append(Change("update_description", {"category": category_url}))
    changes += _component_changes(existing, plans)
    types = component_types(plans)
    if MONTHLY_FEE not in types and any(
        c.get("type") == MONTHLY_FEE for c in existing.get("components") or []
    ):
        types += (MONTHLY_FEE,)  # the component stays, so new plans price it at 0
    changes += _plan_changes(existing, plans, types)
    if activate and existing.get("state") == "Draft":
        changes.append(Change("activate", {}))
    return changes
