"""The one module that talks to Stripe (stripe-python's ``StripeClient``).

Small functions, one call each, every write with an idempotency key derived from what
it writes, so a retry (the client's own, a job's, an operator's) never creates a second
object. Stripe's exceptions become ``StripeTransient``/``StripePermanent`` here and
nowhere else; their messages never carry a key (Stripe's own messages do not).

The API version is pinned in ``API_VERSION``: the version stripe-python 16.1.0 was
generated for. The webhook endpoint in Stripe's dashboard must be created with it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe
from django.conf import settings

from agent_registry.billing.stripe.errors import StripePermanent, StripeTransient

API_VERSION = "2026-10-28.endive"
T = TypeVar("T")


def enabled() -> bool:
    return bool(settings.STRIPE_API_KEY_SECRET)


@functools.cache
def _client(api_key: str, base: str, timeout: float, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        stripe_version=API_VERSION,
        base_addresses={"api": base},
        max_network_retries=retries,
        # requests: stripe-python's own dependency and its default synchronous client.
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def client() -> stripe.StripeClient:
    """The client for the current settings (one per distinct configuration)."""
    return _client(
        settings.STRIPE_API_KEY_SECRET,
        settings.STRIPE_API_BASE,
        settings.STRIPE_TIMEOUT,
        settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def _options(idempotency_key: str | None = None) -> Any:  # a RequestOptions
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def _call(fn: Callable[[], T]) -> T:
    with _mapped_errors():
        return fn()


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise StripeTransient(_describe(exc), status=exc.http_status) from exc
    except stripe.StripeError as exc:
        status = exc.http_status
        if status is not None and (status >= 500 or status in {408, 409, 429}):
            # 409: an idempotent request still in flight; the same key succeeds later.
            raise StripeTransient(_describe(exc), status=status) from exc
        raise StripePermanent(_describe(exc), status=status, code=exc.code or "") from exc


def _describe(exc: stripe.StripeError) -> str:
    kind = type(exc).__name__
    status = f" {exc.http_status}" if exc.http_status else ""
    message = (exc.user_message or str(exc._message or "") or kind)[:300]
    return f"Stripe {kind}{status}: {message}"


# --- customers ---------------------------------------------------------------------------


def customer_create(*, tenant_id: str, name: str, email: str = "") -> str:
    """A customer for the tenant; the key makes a retried create return the same one."""
    params: Any = {"name": name, "metadata": {"tenant_id": tenant_id}}
    if email:
        params["email"] = email
    customer = _call(
        lambda: client().v1.customers.create(
            params=params, options=_options(f"customer-{tenant_id}")
        )
    )
    return str(customer.id)


# --- products, prices, meters -------------------------------------------------------------


def product_create(*, plan_id: str, name: str, description: str = "") -> str:
    params: Any = {"name": name[:250], "metadata": {"plan_id": plan_id}}
    if description:
        params["description"] = description[:1000]
    product = _call(
        lambda: client().v1.products.create(params=params, options=_options(f"product-{plan_id}"))
    )
    return str(product.id)


@dataclass(frozen=True)
class PriceSpec:
    """One price as the registry wants it; ``signature`` names it for idempotency."""

    lookup_key: str
    currency: str
    unit_amount_decimal: str  # minor units, up to 12 decimal places
    meter_id: str = ""  # metered when set, else the flat monthly fee

    @property
    def signature(self) -> str:
        return f"{self.lookup_key}-{self.currency}-{self.unit_amount_decimal}-{self.meter_id}"


def price_create(*, product_id: str, spec: PriceSpec, replacing: str = "") -> str:
    """A new price that takes ``spec.lookup_key`` over from ``replacing`` (the price it
    succeeds: in the idempotency key, so a price changed back to an earlier amount gets
    a new price, not the deactivated one)."""
    recurring: dict[str, Any] = {"interval": "month"}
    if spec.meter_id:
        recurring |= {"usage_type": "metered", "meter": spec.meter_id}
    params: Any = {
        "product": product_id,
        "currency": spec.currency.lower(),
        "unit_amount_decimal": spec.unit_amount_decimal,
        "recurring": recurring,
        "lookup_key": spec.lookup_key,
        "transfer_lookup_key": True,
        "metadata": {"lookup_key": spec.lookup_key},
    }
    price = _call(
        lambda: client().v1.prices.create(
            params=params,
            options=_options(f"price-{product_id}-{spec.signature}-after-{replacing or 'none'}"),
        )
    )
    return str(price.id)


def price_deactivate(price_id: str) -> None:
    _call(lambda: client().v1.prices.update(price_id, params={"active": False}))


def meter_find(event_name: str) -> str | None:
    """The active meter with ``event_name`` (meters are listed, never searched)."""
    meters = _call(lambda: client().v1.billing.meters.list(params={"status": "active"}))
    for meter in meters.auto_paging_iter():
        if meter.event_name == event_name:
            return str(meter.id)
    return None


def meter_create(*, event_name: str, display_name: str) -> str:
    params: Any = {
        "display_name": display_name,
        "event_name": event_name,
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"},
    }
    meter = _call(
        lambda: client().v1.billing.meters.create(
            params=params, options=_options(f"meter-{event_name}")
        )
    )
    return str(meter.id)


# --- checkout and subscriptions -----------------------------------------------------------


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    expires_at: int | None


@dataclass(frozen=True)
class FirstMonth:
    """The fee for the rest of the checkout's calendar month, as a one-time line on the
    first invoice (the registry's own proration by days, not Stripe's by seconds)."""

    product_id: str
    currency: str
    amount: int  # minor units


def checkout_session_create(
    *,
    customer_id: str,
    price_ids: list[tuple[str, bool]],  # (price id, metered)
    client_reference_id: str,
    metadata: dict[str, str],
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
    billing_cycle_anchor: int,
    first_month: FirstMonth | None = None,
    expires_at: int | None = None,
) -> CheckoutSession:
    """A hosted Checkout Session in subscription mode: the flat fee and metered lines
    (metered lines carry no quantity: Stripe bills what the meter sums).

    Stripe's periods are the registry's calendar months: the cycle is anchored at the
    first of next month (UTC), with no proration of Stripe's own; the partial first
    month's fee is the one-time ``first_month`` line the registry computed."""
    items: list[dict[str, Any]] = [
        {"price": pid} if metered else {"price": pid, "quantity": 1} for pid, metered in price_ids
    ]
    if first_month is not None and first_month.amount > 0:
        items.append(
            {
                "price_data": {
                    "currency": first_month.currency.lower(),
                    "product": first_month.product_id,
                    "unit_amount": first_month.amount,
                },
                "quantity": 1,
            }
        )
    params: Any = {
        "mode": "subscription",
        "customer": customer_id,
        "line_items": items,
        "client_reference_id": client_reference_id,
        "metadata": metadata,
        "subscription_data": {
            "metadata": metadata,
            "billing_cycle_anchor": billing_cycle_anchor,
            "proration_behavior": "none",
        },
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if expires_at is not None:
        params["expires_at"] = expires_at
    session = _call(
        lambda: client().v1.checkout.sessions.create(
            params=params, options=_options(idempotency_key)
        )
    )
    return CheckoutSession(str(session.id), str(session.url or ""), session.expires_at)


def checkout_session_retrieve(session_id: str) -> dict[str, Any]:
    return _call(lambda: client().v1.checkout.sessions.retrieve(session_id)).to_dict()


def checkout_session_expire(session_id: str) -> None:
    _call(lambda: client().v1.checkout.sessions.expire(session_id))


def subscription_retrieve(subscription_id: str) -> dict[str, Any]:
    return _call(lambda: client().v1.subscriptions.retrieve(subscription_id)).to_dict()


def subscription_cancel_at_period_end(subscription_id: str) -> dict[str, Any]:
    sub = _call(
        lambda: client().v1.subscriptions.update(
            subscription_id,
            params={"cancel_at_period_end": True},
            options=_options(f"cancel-{subscription_id}"),
        )
    )
    return sub.to_dict()


# --- moving a subscription's items to other prices ----------------------------------------


def subscription_item_update(item_id: str, price_id: str) -> dict[str, Any]:
    """Put ``item_id`` on ``price_id`` without proration (``POST
    /v1/subscription_items/{id}``): the change takes effect from the next invoice on.
    The key names the move, so a retried move is the same request."""
    item = _call(
        lambda: client().v1.subscription_items.update(
            item_id,
            params={"price": price_id, "proration_behavior": "none"},
            options=_options(f"move-{item_id}-{price_id}"),
        )
    )
    return item.to_dict()


def subscription_item_create(
    subscription_id: str, price_id: str, *, metered: bool
) -> dict[str, Any]:
    params: Any = {
        "subscription": subscription_id,
        "price": price_id,
        "proration_behavior": "none",
    }
    if not metered:
        params["quantity"] = 1
    item = _call(
        lambda: client().v1.subscription_items.create(
            params=params, options=_options(f"add-{subscription_id}-{price_id}")
        )
    )
    return item.to_dict()


def subscription_item_delete(item_id: str) -> None:
    """Remove an item, without proration; already gone (404) counts as done."""
    try:
        _call(
            lambda: client().v1.subscription_items.delete(
                item_id, params={"proration_behavior": "none"}
            )
        )
    except StripePermanent as exc:
        if exc.status != 404:
            raise


def invoice_retrieve(invoice_id: str) -> dict[str, Any]:
    return _call(lambda: client().v1.invoices.retrieve(invoice_id)).to_dict()


# --- meter events -------------------------------------------------------------------------


def meter_event_send(
    *, event_name: str, identifier: str, customer_id: str, value: int, timestamp: int
) -> None:
    """One meter event. Stripe drops a second event with the same ``identifier``
    (within its deduplication window), and so does our key: a re-send is a no-op."""
    params: Any = {
        "event_name": event_name,
        "identifier": identifier,
        "payload": {"stripe_customer_id": customer_id, "value": str(value)},
        "timestamp": timestamp,
    }
    _call(
        lambda: client().v1.billing.meter_events.create(
            params=params, options=_options(f"meter-event-{identifier}")
        )
    )
