"""A fake Stripe speaking the part of API v1 the registry's adapter uses.

The real ``stripe.StripeClient`` talks to it through ``STRIPE_API_BASE``: form-encoded
bodies (``line_items[0][price]=…``) as the client sends them, ``Authorization: Bearer
<secret key>`` (401 otherwise), objects built from Stripe's own fixtures
(samples/stripe/fixtures3.json, deep-copied and overridden), errors in Stripe's
``{"error": {"type", "code", "message"}}`` shape. A repeated ``Idempotency-Key`` gets
the first answer again, as Stripe does.

Served: customers, products, prices (create, update, list by ``lookup_keys``), billing
meters (list, create), meter events (create, recorded in ``meter_events``; a repeated
``identifier`` is dropped, as Stripe's deduplication does), checkout sessions (create,
retrieve, expire; one-time ``price_data`` lines; ``subscription_data.billing_cycle_anchor``
with ``proration_behavior=none``), subscriptions (retrieve, update, cancel), subscription
items (create, update, delete; ``proration_behavior=none`` only), invoices (retrieve).
The fake's own bookkeeping (``_``-keys) never goes on the wire.

The world moves as a real Stripe's would, and sends the webhooks a real one sends,
signed exactly as Stripe signs them (``stripe.WebhookSignature.generate_signature_header``)
to ``deliver`` (a callable taking the body and the signature header, returning the
HTTP status; tests pass the Django test client's post) or, if unset, POSTed to
``webhook_url``: ``pay(session_id)``, ``fail_payment(subscription_id)``,
``pay_invoice(subscription_id)``, ``expire_session(session_id)``,
``delete_subscription(subscription_id)``, ``end_period(subscription_id)`` (deleted if
set to cancel, else ``renew``: the cycle's invoice, with each metered item's usage of
the ending period at its price, counted from when the item got that price as Stripe
does, and each fee for the next period; periods are calendar months when anchored). Every event
sent is kept in ``events`` (to re-deliver, reorder or duplicate them). Events an API
call causes (a cancel, an expire) wait in ``outbox`` until ``deliver_outbox()``: Stripe
sends them later, and the test's own thread delivers them.

``fault`` makes the next ``fault_count`` calls (all by default) fail: ``"500"``,
``"429"``, ``"timeout"`` (sleep past the client's timeout), ``"402"`` (card declined).
"""

from __future__ import annotations

import argparse
import copy
import html
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import stripe

from tests.fakes.http_server import Exchange, FakeHTTPServer

SECRET_KEY = "sk_test_fake_registry"
WEBHOOK_SECRET = "whsec_fake_registry_signing_secret"
API_VERSION = "2026-10-28.endive"
PERIOD_SECONDS = 30 * 24 * 3600

FIXTURES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "samples" / "stripe" / "fixtures3.json").read_text()
)["resources"]


def fixture(resource: str, /, **overrides: Any) -> dict[str, Any]:
    """A deep copy of Stripe's sample ``resource`` object with ``overrides`` applied."""
    obj = copy.deepcopy(FIXTURES[resource])
    obj.update(overrides)
    return obj


def event_of(type_: str, obj: dict[str, Any], *, event_id: str, created: int) -> dict[str, Any]:
    return fixture(
        "event",
        id=event_id,
        type=type_,
        created=created,
        api_version=API_VERSION,
        data={"object": copy.deepcopy(obj)},
        pending_webhooks=1,
        request={"id": None, "idempotency_key": None},
    )


def sign(body: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


def parse_form(body: bytes) -> dict[str, Any]:
    """Stripe's nested form encoding (``a[b][0][c]=v``) back into dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part, following in itertools.pairwise(parts):
            child_default: Any = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(copy.copy(child_default))
                node = node[index]
            else:
                node = node.setdefault(part, child_default)
        last = parts[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return root


def wire(obj: Any) -> Any:
    """``obj`` as Stripe shows it: without the fake's own bookkeeping (``_`` keys)."""
    if isinstance(obj, dict):
        return {k: wire(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [wire(v) for v in obj]
    return obj


def next_month_start(epoch: int) -> int:
    """The first second of the calendar month (UTC) after the one ``epoch`` is in."""
    moment = datetime.fromtimestamp(epoch, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


class StripeFault(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.code = status, type_, message, code


class FakeStripe(FakeHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.customers: dict[str, dict[str, Any]] = {}
        self.products: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.meters: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.meter_events: list[dict[str, Any]] = []
        self.item_changes: list[tuple[str, str, str]] = []  # (action, item id, price id)
        self.events: list[dict[str, Any]] = []
        self.delivered: list[tuple[str, int]] = []  # (event type, status answered)
        self.idempotent: dict[str, tuple[int, Any]] = {}
        self.deliver: Callable[[str, str], int] | None = None
        self.webhook_url = ""
        self.webhook_secret = WEBHOOK_SECRET
        self.fault: str | None = None
        self.fault_count: int | None = None
        self.slow_seconds = 3.0
        self._clock = int(time.time())
        self._world = threading.RLock()
        self._local = threading.local()
        self.outbox: list[dict[str, Any]] = []
        # Where a session's ``url`` points: Stripe's hosted page, or (standalone, for the
        # demo) this fake's own page with a "Pay" button (``/checkout/<session id>``).
        self.checkout_base = "https://checkout.stripe.com/c/pay/"

    # --- time and ids ----------------------------------------------------------------

    def now(self) -> int:
        """Strictly increasing seconds: events of one story have distinct ``created``."""
        with self._world:
            self._clock = max(self._clock + 1, int(time.time()))
            return self._clock

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(8)}"

    # --- HTTP ------------------------------------------------------------------------

    def handle(self, exchange: Exchange) -> None:
        request = exchange.request
        if request.path.startswith("/checkout/"):
            self._checkout_page(exchange)
            return
        if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
            exchange.send_json(401, self._error("invalid_request_error", "Invalid API Key."))
            return
        if self._take_fault(exchange):
            return
        key = request.headers.get("idempotency-key")
        if key and request.method == "POST" and key in self.idempotent:
            status, payload = self.idempotent[key]
            exchange.send(
                status, json.dumps(payload).encode(), headers={"idempotent-replayed": "true"}
            )
            return
        params = parse_form(request.body) if request.method == "POST" else {}
        if request.method in {"GET", "DELETE"}:  # stripe-python sends these as a query
            params = {k: v[0] if len(v) == 1 else v for k, v in request.query.items()}
        self._local.in_request = True
        try:
            with self._world:
                status, payload = (
                    200,
                    self._route(request.method, request.path, params, request.query),
                )
        except StripeFault as fault:
            status, payload = fault.status, self._error(fault.type, fault.message, fault.code)
        finally:
            self._local.in_request = False
        payload = wire(payload)
        if key and request.method == "POST":
            self.idempotent[key] = (status, payload)
        exchange.send_json(status, payload)

    def _take_fault(self, exchange: Exchange) -> bool:
        if self.fault is None:
            return False
        if self.fault_count is not None:
            if self.fault_count <= 0:
                return False
            self.fault_count -= 1
        if self.fault == "timeout":
            self.pause(self.slow_seconds)
            exchange.drop()
        elif self.fault == "429":
            exchange.send_json(429, self._error("rate_limit_error", "Too many requests."))
        elif self.fault == "402":
            exchange.send_json(
                402, self._error("card_error", "Your card was declined.", "card_declined")
            )
        else:
            exchange.send_json(500, self._error("api_error", "Something went wrong."))
        return True

    @staticmethod
    def _error(type_: str, message: str, code: str = "") -> dict[str, Any]:
        error: dict[str, Any] = {"type": type_, "message": message}
        if code:
            error["code"] = code
        return {"error": error}

    def _list(self, path: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"object": "list", "data": items, "has_more": False, "url": path}

    def _route(self, method: str, path: str, params: dict[str, Any], query: dict) -> Any:
        parts = path.strip("/").split("/")[1:]  # without "v1"
        match method, parts:
            case "POST", ["customers"]:
                return self._create_customer(params)
            case "GET", ["customers", cid]:
                return self._get(self.customers, cid, "customer")
            case "POST", ["products"]:
                return self._create_product(params)
            case "POST", ["prices"]:
                return self._create_price(params)
            case "POST", ["prices", pid]:
                price = self._get(self.prices, pid, "price")
                if "active" in params:
                    price["active"] = params["active"] == "true"
                return price
            case "GET", ["prices"]:
                keys = {v for k, vs in query.items() if k.startswith("lookup_keys") for v in vs}
                found = [p for p in self.prices.values() if p["lookup_key"] in keys]
                return self._list(path, found)
            case "GET", ["billing", "meters"]:
                return self._list(path, list(self.meters.values()))
            case "POST", ["billing", "meters"]:
                return self._create_meter(params)
            case "POST", ["billing", "meter_events"]:
                return self._create_meter_event(params)
            case "POST", ["checkout", "sessions"]:
                return self._create_session(params)
            case "GET", ["checkout", "sessions", sid]:
                return self._get(self.sessions, sid, "checkout.session")
            case "POST", ["checkout", "sessions", sid, "expire"]:
                return self.expire_session(sid, send=True)
            case "GET", ["subscriptions", sid]:
                return self._get(self.subscriptions, sid, "subscription")
            case "POST", ["subscriptions", sid]:
                return self._update_subscription(sid, params)
            case "DELETE", ["subscriptions", sid]:
                return self.delete_subscription(sid)
            case "GET", ["invoices", iid]:
                return self._get(self.invoices, iid, "invoice")
            case "POST", ["subscription_items"]:
                return self._create_item(params)
            case "POST", ["subscription_items", iid]:
                return self._update_item(iid, params)
            case "DELETE", ["subscription_items", iid]:
                return self._delete_item(iid, params)
        raise StripeFault(
            404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})."
        )

    @staticmethod
    def _get(store: dict[str, dict[str, Any]], oid: str, kind: str) -> dict[str, Any]:
        if oid not in store:
            raise StripeFault(
                404, "invalid_request_error", f"No such {kind}: '{oid}'", "resource_missing"
            )
        return store[oid]

    # --- objects ---------------------------------------------------------------------

    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = fixture(
            "customer",
            id=self.new_id("cus"),
            created=self.now(),
            name=params.get("name"),
            email=params.get("email"),
            metadata=params.get("metadata", {}),
            discount=None,
        )
        self.customers[customer["id"]] = customer
        return customer

    def _create_product(self, params: dict[str, Any]) -> dict[str, Any]:
        product = fixture(
            "product",
            id=self.new_id("prod"),
            created=self.now(),
            name=params["name"],
            description=params.get("description"),
            metadata=params.get("metadata", {}),
            default_price=None,
            package_dimensions=None,
            type="service",
        )
        self.products[product["id"]] = product
        return product

    def _create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("product") not in self.products:
            raise StripeFault(400, "invalid_request_error", "No such product.", "resource_missing")
        recurring = params.get("recurring", {})
        lookup_key = params.get("lookup_key")
        if lookup_key:
            holders = [p for p in self.prices.values() if p["lookup_key"] == lookup_key]
            if holders and params.get("transfer_lookup_key") != "true":
                raise StripeFault(400, "invalid_request_error", "lookup_key already in use.")
            for holder in holders:
                holder["lookup_key"] = None
        decimal = params.get("unit_amount_decimal") or params.get("unit_amount", "0")
        price = fixture(
            "price",
            id=self.new_id("price"),
            created=self.now(),
            product=params["product"],
            currency=params["currency"],
            lookup_key=lookup_key,
            metadata=params.get("metadata", {}),
            recurring={
                "interval": recurring.get("interval", "month"),
                "interval_count": 1,
                "meter": recurring.get("meter"),
                "usage_type": recurring.get("usage_type", "licensed"),
                "trial_period_days": None,
            },
            transform_quantity=None,
            unit_amount=int(float(decimal)) if float(decimal).is_integer() else None,
            unit_amount_decimal=decimal,
        )
        self.prices[price["id"]] = price
        return price

    def _one_time_price(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("product") not in self.products:
            raise StripeFault(400, "invalid_request_error", "No such product.", "resource_missing")
        price = fixture(
            "price",
            id=self.new_id("price"),
            created=self.now(),
            product=data["product"],
            currency=data["currency"],
            lookup_key=None,
            metadata={},
            recurring=None,
            type="one_time",
            transform_quantity=None,
            unit_amount=int(data["unit_amount"]),
            unit_amount_decimal=str(data["unit_amount"]),
        )
        self.prices[price["id"]] = price
        return price

    def _create_meter(self, params: dict[str, Any]) -> dict[str, Any]:
        meter = fixture(
            "billing.meter",
            id=self.new_id("mtr"),
            created=self.now(),
            display_name=params["display_name"],
            event_name=params["event_name"],
            customer_mapping=params.get("customer_mapping"),
            value_settings=params.get("value_settings"),
            livemode=False,
        )
        self.meters[meter["id"]] = meter
        return meter

    def _create_meter_event(self, params: dict[str, Any]) -> dict[str, Any]:
        event = fixture(
            "billing.meter_event",
            created=self.now(),
            event_name=params["event_name"],
            identifier=params.get("identifier") or self.new_id("mev"),
            payload=params["payload"],
            timestamp=int(params["timestamp"]),
        )
        if event["payload"].get("stripe_customer_id") not in self.customers:
            raise StripeFault(400, "invalid_request_error", "No such customer in payload.")
        if not any(m["event_name"] == event["event_name"] for m in self.meters.values()):
            raise StripeFault(400, "invalid_request_error", "No active meter for event_name.")
        if not any(e["identifier"] == event["identifier"] for e in self.meter_events):
            self.meter_events.append(event)
        return event

    def meter_totals(self) -> dict[tuple[str, str], int]:
        """(customer id, event name) → summed value: what Stripe would bill."""
        totals: dict[tuple[str, str], int] = {}
        for event in self.meter_events:
            key = (event["payload"]["stripe_customer_id"], event["event_name"])
            totals[key] = totals.get(key, 0) + int(event["payload"]["value"])
        return totals

    def usage_amount(self, customer_id: str, price_id: str) -> int:
        """What Stripe's invoice line for a metered price comes to, in minor units: the
        meter's summed value times ``unit_amount_decimal``, rounded half up to an integer
        (Stripe rounds a line's amount once, to the nearest minor unit)."""
        price = self.prices[price_id]
        meter = self.meters[price["recurring"]["meter"]]
        total = self.meter_totals().get((customer_id, meter["event_name"]), 0)
        amount = Decimal(price["unit_amount_decimal"]) * total
        return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "subscription":
            raise StripeFault(400, "invalid_request_error", "Only subscription mode is faked.")
        if params.get("customer") not in self.customers:
            raise StripeFault(400, "invalid_request_error", "No such customer.", "resource_missing")
        for item in params.get("line_items", []):
            if "price_data" in item:  # an inline one-time price, as Stripe makes one
                item["price"] = self._one_time_price(item.pop("price_data"))["id"]
            self._get(self.prices, item["price"], "price")
        subscription_data = params.get("subscription_data", {})
        anchor = subscription_data.get("billing_cycle_anchor")
        proration = subscription_data.get("proration_behavior", "create_prorations")
        if anchor is not None and proration != "none":
            raise StripeFault(400, "invalid_request_error", "Only proration_behavior=none.")
        sid = "cs_test_" + secrets.token_hex(12)
        created = self.now()
        if "expires_at" in params and not (  # against the wall clock, as Stripe's
            30 * 60 - 5 <= int(params["expires_at"]) - time.time() <= 24 * 3600 + 5
        ):
            raise StripeFault(
                400, "invalid_request_error", "expires_at must be 30 minutes to 24 hours away."
            )
        session = fixture(
            "checkout.session",
            id=sid,
            object="checkout.session",
            mode="subscription",
            status="open",
            payment_status="unpaid",
            customer=params["customer"],
            subscription=None,
            payment_intent=None,
            client_reference_id=params.get("client_reference_id"),
            metadata=params.get("metadata", {}),
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            created=created,
            expires_at=int(params.get("expires_at") or created + 24 * 3600),
            url=f"{self.checkout_base}{sid}",
        )
        session["_line_items"] = params.get("line_items", [])
        session["_subscription_metadata"] = subscription_data.get("metadata", {})
        session["_billing_cycle_anchor"] = int(anchor) if anchor is not None else None
        self.sessions[sid] = session
        return self._public(session)

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _update_subscription(self, sid: str, params: dict[str, Any]) -> dict[str, Any]:
        sub = self._get(self.subscriptions, sid, "subscription")
        if sub["status"] == "canceled":
            raise StripeFault(400, "invalid_request_error", "This subscription is canceled.")
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
            sub["cancel_at"] = self._period_end(sub) if sub["cancel_at_period_end"] else None
            self._send("customer.subscription.updated", sub)
        return sub

    def _item_of(self, iid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for sub in self.subscriptions.values():
            for item in sub["items"]["data"]:
                if item["id"] == iid:
                    return sub, item
        raise StripeFault(
            404, "invalid_request_error", f"No such subscription item: '{iid}'", "resource_missing"
        )

    @staticmethod
    def _no_proration(params: dict[str, Any]) -> None:
        if params.get("proration_behavior", "create_prorations") != "none":
            raise StripeFault(400, "invalid_request_error", "Only proration_behavior=none.")

    def _create_item(self, params: dict[str, Any]) -> dict[str, Any]:
        self._no_proration(params)
        sub = self._get(self.subscriptions, params.get("subscription", ""), "subscription")
        price = self._get(self.prices, params.get("price", ""), "price")
        if any(i["price"]["id"] == price["id"] for i in sub["items"]["data"]):
            raise StripeFault(400, "invalid_request_error", "The price is already on it.")
        first = sub["items"]["data"][0]
        quantity = int(params["quantity"]) if "quantity" in params else None
        item = self._item(
            sub["id"],
            price,
            quantity,
            first["current_period_start"],
            first["current_period_end"],
        )
        sub["items"]["data"].append(item)
        self.item_changes.append(("create", item["id"], price["id"]))
        self._send("customer.subscription.updated", sub)
        return self._public(item)

    def _update_item(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        self._no_proration(params)
        sub, item = self._item_of(iid)
        if "price" in params:
            item["price"] = copy.deepcopy(self._get(self.prices, params["price"], "price"))
            # Stripe bills a metered price only for usage reported after the item got it.
            item["_since"] = self.now()
            self.item_changes.append(("update", iid, params["price"]))
        self._send("customer.subscription.updated", sub)
        return self._public(item)

    def _delete_item(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        self._no_proration(params)
        sub, item = self._item_of(iid)
        sub["items"]["data"].remove(item)
        self.item_changes.append(("delete", iid, item["price"]["id"]))
        self._send("customer.subscription.updated", sub)
        return {"id": iid, "object": "subscription_item", "deleted": True}

    # --- the world moves ---------------------------------------------------------------

    def pay(self, session_id: str) -> dict[str, Any]:
        """The customer pays on the hosted page: a subscription, its first invoice paid,
        and the three events Stripe sends for it."""
        with self._world:
            session = self.sessions[session_id]
            now = self.now()
            sub_id = self.new_id("sub")
            anchor = session["_billing_cycle_anchor"]
            period_end = anchor if anchor is not None else now + PERIOD_SECONDS
            items, first_lines = [], []
            for item in session["_line_items"]:
                price = self.prices[item["price"]]
                quantity = int(item["quantity"]) if "quantity" in item else None
                if price["recurring"] is None:  # one-time: on the first invoice only
                    first_lines.append(self._line(price, quantity or 1, now, now))
                    continue
                if anchor is None and price["recurring"]["usage_type"] == "licensed":
                    first_lines.append(self._line(price, quantity or 1, now, period_end))
                items.append(self._item(sub_id, price, quantity, now, period_end))
            sub = fixture(
                "subscription",
                id=sub_id,
                customer=session["customer"],
                status="active",
                created=now,
                start_date=now,
                billing_cycle_anchor=anchor or now,
                cancel_at=None,
                canceled_at=None,
                ended_at=None,
                cancel_at_period_end=False,
                metadata=dict(session["_subscription_metadata"]),
                items={
                    "object": "list",
                    "data": items,
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={sub_id}",
                },
                latest_invoice=None,
            )
            sub["_calendar"] = anchor is not None
            self.subscriptions[sub_id] = sub
            invoice = self._invoice(sub, paid=True, lines=first_lines)
            session.update(status="complete", payment_status="paid", subscription=sub_id)
        self._send("customer.subscription.created", sub)
        self._send("invoice.paid", invoice)
        self._send("invoice.payment_succeeded", invoice)
        self._send("checkout.session.completed", self._public(session))
        return sub

    def _item(
        self, sub_id: str, price: dict[str, Any], quantity: int | None, start: int, end: int
    ) -> dict[str, Any]:
        item = fixture(
            "subscription_item",
            id=self.new_id("si"),
            created=self.now(),
            subscription=sub_id,
            price=copy.deepcopy(price),
            quantity=quantity,
            current_period_start=start,
            current_period_end=end,
            metadata={},
            discounts=[],
        )
        item["_since"] = self.now()  # a metered price bills usage from here on (below)
        return item

    @staticmethod
    def _line(price: dict[str, Any], quantity: int, start: int, end: int) -> dict[str, Any]:
        amount = Decimal(price["unit_amount_decimal"]) * quantity
        return {
            "object": "line_item",
            "price": price["id"],
            "quantity": quantity,
            "amount": int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP)),
            "period": {"start": start, "end": end},
        }

    def _invoice(
        self, sub: dict[str, Any], *, paid: bool, lines: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        lines = lines or []
        total = sum(line["amount"] for line in lines)
        invoice = fixture(
            "invoice",
            id=self.new_id("in"),
            customer=sub["customer"],
            created=self.now(),
            status="paid" if paid else "open",
            attempted=True,
            attempt_count=1,
            amount_due=total,
            amount_paid=total if paid else 0,
            subtotal=total,
            total=total,
            lines={"object": "list", "data": lines, "has_more": False, "url": "/v1/invoices"},
            billing_reason="subscription_cycle",
            parent={
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": dict(sub["metadata"]),
                },
            },
        )
        self.invoices[invoice["id"]] = invoice
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def fail_payment(self, sub_id: str) -> dict[str, Any]:
        """A renewal's card is declined: the invoice stays open, the subscription past due."""
        with self._world:
            sub = self.subscriptions[sub_id]
            invoice = self._invoice(sub, paid=False)
            sub["status"] = "past_due"
        self._send("invoice.payment_failed", invoice)
        self._send("customer.subscription.updated", sub)
        return invoice

    def pay_invoice(self, sub_id: str) -> dict[str, Any]:
        """The open invoice is paid (a retry succeeded, or a new card)."""
        with self._world:
            sub = self.subscriptions[sub_id]
            invoice = self.invoices[sub["latest_invoice"]]
            invoice["status"] = "paid"
            sub["status"] = "active"
        self._send("invoice.paid", invoice)
        self._send("customer.subscription.updated", sub)
        return invoice

    def expire_session(self, session_id: str, *, send: bool = True) -> dict[str, Any]:
        with self._world:
            session = self._get(self.sessions, session_id, "checkout.session")
            if session["status"] != "open":
                raise StripeFault(400, "invalid_request_error", "Only open sessions expire.")
            session["status"] = "expired"
        if send:
            self._send("checkout.session.expired", self._public(session))
        return self._public(session)

    def delete_subscription(self, sub_id: str) -> dict[str, Any]:
        with self._world:
            sub = self._get(self.subscriptions, sub_id, "subscription")
            now = self.now()
            sub.update(status="canceled", canceled_at=now, ended_at=now)
        self._send("customer.subscription.deleted", sub)
        return sub

    def end_period(self, sub_id: str) -> dict[str, Any]:
        """The period ends: a subscription set to cancel at its end is deleted, any
        other renews (``renew``)."""
        sub = self.subscriptions[sub_id]
        if sub["cancel_at_period_end"]:
            return self.delete_subscription(sub_id)
        return self.renew(sub_id)

    def metered_usage(
        self, customer_id: str, event_name: str, start: int, end: int, since: int = 0
    ) -> int:
        """The meter's summed value for the customer over ``[max(start, since), end)``."""
        return sum(
            int(event["payload"]["value"])
            for event in self.meter_events
            if event["payload"]["stripe_customer_id"] == customer_id
            and event["event_name"] == event_name
            and max(start, since) <= event["timestamp"] < end
        )

    def renew(self, sub_id: str) -> dict[str, Any]:
        """Stripe's cycle at the period's end: an invoice with each metered item's usage
        of the ending period (the meter's events with timestamps in it, from the moment
        the item got its price, at the item's price now) and each licensed item's fee
        for the next period, paid; the clock moves to the new period."""
        with self._world:
            sub = self.subscriptions[sub_id]
            items = sub["items"]["data"]
            start, end = items[0]["current_period_start"], items[0]["current_period_end"]
            after = next_month_start(end) if sub["_calendar"] else end + PERIOD_SECONDS
            lines = []
            for item in items:
                price = item["price"]
                if price["recurring"]["usage_type"] == "metered":
                    meter = self.meters[price["recurring"]["meter"]]
                    used = self.metered_usage(
                        sub["customer"], meter["event_name"], start, end, item["_since"]
                    )
                    lines.append(self._line(price, used, start, end))
                else:
                    lines.append(self._line(price, item["quantity"] or 1, end, after))
            self._clock = max(self._clock, end)
            for item in items:
                item.update(current_period_start=end, current_period_end=after)
            invoice = self._invoice(sub, paid=True, lines=lines)
            invoice.update(period_start=start, period_end=end)
        self._send("invoice.paid", invoice)
        self._send("invoice.payment_succeeded", invoice)
        self._send("customer.subscription.updated", sub)
        return invoice

    @staticmethod
    def _period_end(sub: dict[str, Any]) -> int:
        return int(sub["items"]["data"][0]["current_period_end"])

    # --- the hosted Checkout page, standalone -----------------------------------------

    def _checkout_page(self, exchange: Exchange) -> None:
        """``GET /checkout/<id>``: the session and a "Pay" button; ``POST``: pay it (the
        webhooks go to ``webhook_url``), then back to the session's ``success_url``."""
        request = exchange.request
        sid = request.path.strip("/").split("/")[-1]
        session = self.sessions.get(sid)
        if session is None:
            exchange.send(404, b"No such checkout session.", "text/plain; charset=utf-8")
            return
        if request.method == "POST" and session["status"] == "open":
            self.pay(sid)
            # Stripe fills its placeholder in the return address.
            target = (session.get("success_url") or "/").replace("{CHECKOUT_SESSION_ID}", sid)
            exchange.send(303, b"", "text/plain", headers={"location": target})
            return
        items = "".join(
            f"<li>{html.escape(self.prices[item['price']]['unit_amount_decimal'])} "
            f"{html.escape(self.prices[item['price']]['currency'].upper())} (minor units)"
            f"{' per unit used' if self.prices[item['price']]['recurring']['meter'] else ''}</li>"
            for item in session["_line_items"]
        )
        button = (
            '<form method="post"><button>Pay (fake card 4242)</button></form>'
            if session["status"] == "open"
            else f"<p>This session is {html.escape(session['status'])}.</p>"
        )
        page = (
            "<!doctype html><title>Fake Stripe Checkout</title>"
            f"<h1>Fake Stripe Checkout</h1><p>Session {html.escape(sid)}</p>"
            f"<ul>{items}</ul>{button}"
        )
        exchange.send(200, page.encode(), "text/html; charset=utf-8")

    # --- webhooks --------------------------------------------------------------------

    def _send(self, type_: str, obj: dict[str, Any]) -> None:
        event = event_of(type_, wire(obj), event_id=self.new_id("evt"), created=self.now())
        self.events.append(event)
        if getattr(self._local, "in_request", False):
            # Caused by an API call (a cancel, an expire): Stripe sends it later, and the
            # test delivers it from its own thread (``deliver_outbox``), so the receiver
            # writes inside the test's transaction, never from this server thread.
            self.outbox.append(event)
        else:
            self.send_event(event)

    def deliver_outbox(self) -> list[int]:
        """Deliver the events API calls caused, in order; their answers."""
        sent, self.outbox = self.outbox, []
        return [self.send_event(event) for event in sent]

    def send_event(self, event: dict[str, Any], *, timestamp: int | None = None) -> int:
        """Deliver ``event`` (again) as Stripe does: JSON body, signed header."""
        body = json.dumps(event)
        header = sign(body, self.webhook_secret, timestamp)
        if self.deliver is not None:
            status = self.deliver(body, header)
        elif self.webhook_url:
            try:
                status = httpx.post(
                    self.webhook_url,
                    content=body,
                    headers={"content-type": "application/json", "stripe-signature": header},
                ).status_code
            except httpx.HTTPError:
                status = 0  # the registry is not running: kept in ``events`` only
        else:
            status = 0  # nobody listens: kept in ``events`` only
        self.delivered.append((event["type"], status))
        return status


# --- standalone: ``python -m tests.fakes.stripe --port 12111`` (docs/billing.md) -------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.stripe", description="A fake Stripe for the demo."
    )
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument(
        "--webhook-url",
        default="http://127.0.0.1:8000/api/v1/billing/webhooks/",
        help="where the fake POSTs its signed events (the registry's webhook endpoint)",
    )
    args = parser.parse_args(argv)
    fake = FakeStripe()
    fake.port = args.port
    fake.webhook_url = args.webhook_url
    fake.start()
    fake.checkout_base = f"{fake.base_url}/checkout/"
    print(f"Fake Stripe listening on {fake.base_url}", flush=True)
    print("Run the registry with:", flush=True)
    print(f"  export STRIPE_API_BASE={fake.base_url}", flush=True)
    print(f"  export STRIPE_API_KEY_SECRET={SECRET_KEY}", flush=True)
    print("  export STRIPE_PUBLISHABLE_KEY=pk_test_fake_registry", flush=True)
    print(f"  export STRIPE_WEBHOOK_SECRET={fake.webhook_secret}", flush=True)
    print(f"Signed webhooks go to {fake.webhook_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
