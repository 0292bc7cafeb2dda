"""A fake Waldur MasterMind speaking the REST API the registry's adapter uses.

Field names are Waldur's (waldur-api-client 8.1.3's models: ``Customer``, ``Project``,
``CustomerUser``, ``WebHook``). Served: ``GET /api/customers/``, ``/api/customers/<uuid>/``,
``/api/customers/<uuid>/users/``, ``/api/projects/``, ``/api/projects/<uuid>/``,
``GET|POST /api/hooks-web/``, ``PATCH /api/hooks-web/<uuid>/``; usage:
``POST /api/marketplace-component-usages/set_usage/`` and
``GET /api/marketplace-component-usages/?resource_uuid=&billing_period=`` (``_handle_usage``);
paging by ``page`` and ``page_size``; ``Authorization: Token <TOKEN>`` required (401 otherwise).

Changing the world through the API (``POST|PATCH|DELETE /api/customers/…`` and
``/api/projects/…``, as a staff user would in Waldur's UI) fires the matching events
at every active hook registered in ``/api/hooks-web/`` whose ``event_types`` include
it: one plain JSON POST ``{"created", "message", "context", "event_type"}`` with
flattened ``customer_*``/``project_*`` context keys, no signature, no retry — as
Waldur does (``delivered`` records each delivery's destination and status). The
``add_*`` helpers change the world silently, as a lost hook would.

Offerings (``ProviderOfferingDetails``, ``ProviderPlanDetails``, ``OfferingComponent``):
``GET|POST /api/marketplace-provider-offerings/`` (list filtered by ``customer_uuid``),
``GET|DELETE …/<uuid>/`` (DELETE only while Draft), the actions ``activate``, ``pause``
(``paused_reason``), ``unpause``, ``archive``, ``draft``, ``update_overview``,
``update_description`` (the category), ``create_offering_component``,
``update_offering_component``; ``GET|POST /api/marketplace-plans/``, ``GET|PATCH
…/<uuid>/``, ``update_prices``, ``update_quotas``, ``archive``. States and transitions
as mastermind's ``Offering``: Draft → Active (``activate``, also from Paused and
Unavailable), Active → Paused → Active (``pause``/``unpause``), anything → Archived; a
refused transition is 409. Plans start with empty prices; ``update_prices`` accepts only
the offering's component types and writes ``future_prices`` instead while the plan has
resources (``resources_count``, set by a test). ``offerings_delay`` slows each listing
of offerings; ``lose_create_answers`` makes the next creates of an offering happen but
answer only after the client's timeout (a lost answer).

Orders and resources (``_handle_orders``): ``GET /api/marketplace-orders/`` (filters
``state``, ``offering_uuid``, ``provider_uuid``), ``GET …/<uuid>/`` and its provider actions
with Waldur's transitions; ``GET /api/marketplace-provider-resources/`` (``provider_uuid``),
``…/<uuid>/``, ``set_backend_id/``, ``set_endpoints/``; ``GET
/api/marketplace-provider-offerings/<uuid>/`` for offerings seeded with ``add_offering``;
``/api/marketplace-resource-api-keys/`` (list by ``resource_uuid``, ``report_created/``,
``<uuid>/set_key/``), keeping the value received (``key_for``). ``path_faults`` fails
only the calls whose path ends with a suffix (also ``"echo400"``: a 400 quoting the body).

``fault`` makes the next ``fault_count`` calls (all by default) fail: ``"timeout"``
(sleep past the client's timeout), ``"500"``, ``"429"``, ``"400"``, ``"403"``, ``"garbage"``.
"""

from __future__ import annotations

import json
import threading
import uuid as uuidlib
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from tests.fakes.http_server import Exchange, FakeHTTPServer

TOKEN = "fake-waldur-token"
# The service provider's customer (WALDUR_PROVIDER_CUSTOMER_UUID in the tests).
PROVIDER_UUID = "5e1f0c1b2a3d4e5f60718293a4b5c6d7"
# The marketplace category of the agents' offerings (WALDUR_CATEGORY_UUID in the tests).
CATEGORY_UUID = "c47e9a0b1c2d4e3f8a9b0c1d2e3f4a5b"


class FakeWaldur(FakeHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.customers: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.users: dict[str, list[dict[str, Any]]] = {}  # customer uuid → CustomerUser
        self.hooks: dict[str, dict[str, Any]] = {}
        self.delivered: list[tuple[str, str, int | str]] = []  # (event, url, status)
        self.offerings: dict[str, dict[str, Any]] = {}  # uuid → ProviderOfferingDetails
        self.plans: dict[str, dict[str, Any]] = {}  # uuid → ProviderPlanDetails
        self.offerings_delay = 0.0  # seconds each offerings listing takes (races)
        self.lose_create_answers = 0  # creates made whose answer then times out
        # Marketplace resources (uuid hex → Resource fields; orders and usage share them)
        # and the usages set on them: (resource uuid hex, type, "YYYY-MM-01") → ComponentUsage
        self.resources: dict[str, dict[str, Any]] = {}
        self.component_usages: dict[tuple[str, str, str], dict[str, Any]] = {}
        # Orders and resources (``_handle_orders``; seeded with add_offering/add_order).
        self.seeded_offerings: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.api_keys: dict[str, dict[str, Any]] = {}  # ResourceApiKeyStatus, no value
        self.key_values: dict[str, str] = {}  # key uuid → the value last received
        self.path_faults: dict[str, str] = {}  # path suffix → a fault, as ``fault``
        self.fault: str | None = None
        self.fault_count: int | None = None
        self.slow_seconds = 2.0

    # --- the world -------------------------------------------------------------------

    def add_customer(self, name: str, *, abbreviation: str = "", blocked: bool = False) -> str:
        uuid = uuidlib.uuid4().hex
        self.customers[uuid] = {
            "url": f"{self.base_url}/api/customers/{uuid}/",
            "uuid": uuid,
            "name": name,
            "abbreviation": abbreviation,
            "blocked": blocked,
            "archived": False,
            "created": "2026-01-01T00:00:00Z",
        }
        self.users.setdefault(uuid, [])
        return uuid

    def add_project(self, customer_uuid: str, name: str) -> str:
        uuid = uuidlib.uuid4().hex
        self.projects[uuid] = {
            "url": f"{self.base_url}/api/projects/{uuid}/",
            "uuid": uuid,
            "name": name,
            "customer": f"{self.base_url}/api/customers/{customer_uuid}/",
            "customer_uuid": customer_uuid,
            "customer_name": self.customers[customer_uuid]["name"],
            "end_date": None,
            "is_removed": False,
        }
        return uuid

    def set_role(self, customer_uuid: str, username: str, role_name: str | None, **kw) -> None:
        users = [u for u in self.users[customer_uuid] if u["username"] != username]
        if role_name is not None or kw.get("projects"):
            users.append(
                {
                    "uuid": uuidlib.uuid4().hex,
                    "username": username,
                    "full_name": username,
                    "email": f"{username}@example.org",
                    "role_name": role_name,
                    "projects": kw.get("projects", []),
                }
            )
        self.users[customer_uuid] = users

    def add_resource(self, *, uuid: str | None = None, state: str = "OK", name: str = "") -> str:
        """A marketplace resource (the Waldur side of a subscription); its uuid hex."""
        key = uuidlib.UUID(uuid).hex if uuid else uuidlib.uuid4().hex
        self.resources[key] = {
            "uuid": key,
            "name": name or f"resource {key[:8]}",
            "state": state,
            "offering_uuid": uuidlib.uuid4().hex,
            "project_uuid": uuidlib.uuid4().hex,
        }
        return key

    def usage_of(self, resource_uuid: Any, period: str) -> dict[str, str]:
        """Component type → amount held for the resource's month (``YYYY-MM``)."""
        key = uuidlib.UUID(str(resource_uuid)).hex
        return {
            kind: usage["usage"]
            for (resource, kind, month), usage in self.component_usages.items()
            if resource == key and month == f"{period}-01"
        }

    # --- serving ---------------------------------------------------------------------

    def handle(self, exchange: Exchange) -> None:
        request = exchange.request
        if self.fault and (self.fault_count is None or self.fault_count > 0):
            if self.fault_count is not None:
                self.fault_count -= 1
            if self._fail(exchange):
                return
        if request.headers.get("authorization") != f"Token {TOKEN}":
            exchange.send_json(401, {"detail": "Invalid token."})
            return
        parts = [p for p in request.path.split("/") if p][1:]  # drop "api"
        method = request.method
        if self._handle_world(exchange, method, parts):
            return
        if self._handle_offerings(exchange, method, parts):
            return None
        if method == "GET" and parts == ["customers"]:
            return self._page(exchange, list(self.customers.values()))
        if method == "GET" and parts == ["projects"]:
            return self._page(exchange, list(self.projects.values()))
        if method == "GET" and parts == ["hooks-web"]:
            return self._page(exchange, list(self.hooks.values()))
        if method == "GET" and len(parts) == 3 and parts[0] == "customers" and parts[2] == "users":
            return self._page(exchange, self.users.get(parts[1].replace("-", ""), []))
        if method == "GET" and len(parts) == 2 and parts[0] in ("customers", "projects"):
            table = self.customers if parts[0] == "customers" else self.projects
            found = table.get(parts[1].replace("-", ""))
            if found is None:
                return exchange.send_json(404, {"detail": "Not found."})
            return exchange.send_json(200, found)
        if method == "POST" and parts == ["hooks-web"]:
            body = request.json
            uuid = uuidlib.uuid4().hex
            self.hooks[uuid] = {
                "url": f"{self.base_url}/api/hooks-web/{uuid}/",
                "uuid": uuid,
                "hook_type": "webhook",
                "author_username": "staff",
                **body,
            }
            return exchange.send_json(201, self.hooks[uuid])
        if method == "PATCH" and len(parts) == 2 and parts[0] == "hooks-web":
            hook = self.hooks.get(parts[1].replace("-", ""))
            if hook is None:
                return exchange.send_json(404, {"detail": "Not found."})
            hook.update(request.json)
            return exchange.send_json(200, hook)
        if self._handle_usage(exchange, method, parts):
            return
        if self._handle_orders(exchange, method, parts):
            return
        exchange.send_json(404, {"detail": "Not found."})

    # --- usage -------------------------------------------------------------------------

    USAGE_STATES = ("OK", "Updating", "Terminating")  # where Waldur accepts usage

    def _handle_usage(self, exchange: Exchange, method: str, parts: list[str]) -> bool:
        if parts[:1] != ["marketplace-component-usages"]:
            return False
        if method == "POST" and parts[1:] == ["set_usage"]:
            self._set_usage(exchange, exchange.request.json or {})
            return True
        if method == "GET" and len(parts) == 1:
            query = exchange.request.query
            resource = query.get("resource_uuid", [""])[0].replace("-", "")
            period = query.get("billing_period", [""])[0]
            found = [
                usage
                for (key, _, month), usage in self.component_usages.items()
                if (not resource or key == resource) and (not period or month == period)
            ]
            self._page(exchange, found)
            return True
        return False

    def _set_usage(self, exchange: Exchange, body: dict[str, Any]) -> None:
        try:
            key = uuidlib.UUID(str(body.get("resource"))).hex
        except ValueError:
            return exchange.send_json(400, {"resource": ["Must be a valid UUID."]})
        resource = self.resources.get(key)
        if resource is None:
            return exchange.send_json(400, {"resource": ["Object does not exist."]})
        if resource["state"] not in self.USAGE_STATES:
            return exchange.send_json(
                400, {"non_field_errors": [f"Resource is in state {resource['state']}."]}
            )
        moment = body.get("date") or datetime.now(UTC).isoformat()
        month = f"{moment[:7]}-01"
        items = body.get("usages") or []
        for item in items:
            amount = str(item.get("amount", ""))
            try:  # as DRF's DecimalField(decimal_places=2): the text's own places count
                exponent = Decimal(amount).as_tuple().exponent
                valid = isinstance(exponent, int) and exponent >= -2
            except InvalidOperation:
                valid = False
            if not valid or not item.get("type"):
                return exchange.send_json(
                    400, {"usages": [f"No more than 2 decimal places: {amount!r}"]}
                )
        for item in items:
            self.component_usages[(key, item["type"], month)] = {
                "uuid": uuidlib.uuid4().hex,
                "created": datetime.now(UTC).isoformat(),
                "description": item.get("description", ""),
                "type": item["type"],
                "name": item["type"],
                "measured_unit": "",
                "usage": f"{Decimal(str(item['amount'])):.2f}",
                "date": moment,
                "recurring": False,
                "resource_name": resource["name"],
                "resource_uuid": key,
                "offering_uuid": resource["offering_uuid"],
                "project_uuid": resource["project_uuid"],
                "billing_period": month,
                "modified_by": None,
            }
        exchange.send(201, b"")

    def _fail(self, exchange: Exchange) -> bool:
        if self.fault == "timeout":
            self.pause(self.slow_seconds)
            exchange.send_json(200, [])
        elif self.fault in ("500", "429", "400", "403"):
            exchange.send_json(int(self.fault), {"detail": f"fault {self.fault}"})
        elif self.fault == "garbage":
            exchange.send(200, b"<html>not json")
        else:
            return False
        return True

    def _page(self, exchange: Exchange, items: list[dict[str, Any]]) -> None:
        query = exchange.request.query
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["10"])[0])
        chunk = items[(page - 1) * size : page * size]
        exchange.send(
            200,
            json.dumps(chunk).encode(),
            headers={"x-result-count": str(len(items))},
        )

    # --- the world changed through the API, with Waldur's events ---------------------

    def _handle_world(self, exchange: Exchange, method: str, parts: list[str]) -> bool:
        """Staff changes to customers and projects, a consumer's orders and the reveal of
        their keys (each change fires its events); True if served."""
        body = exchange.request.json if exchange.request.body else {}
        if method == "POST" and parts == ["marketplace-orders"]:
            self._order_create(exchange, body)
            return True
        if (
            method == "GET"
            and parts[:1] == ["marketplace-resource-api-keys"]
            and parts[2:] == ["reveal"]
        ):
            key = self.api_keys.get(parts[1].replace("-", ""))
            if key is None:
                exchange.send_json(404, {"detail": "Not found."})
            else:
                exchange.send_json(200, {**key, "api_key": self.key_values[key["uuid"]]})
            return True
        if method == "POST" and parts == ["customers"]:
            uuid = self.add_customer(body["name"], abbreviation=body.get("abbreviation", ""))
            exchange.send_json(201, self.customers[uuid])
            self.emit("customer_creation_succeeded", customer=uuid)
            return True
        if method == "POST" and parts == ["projects"]:
            customer_uuid = body["customer"].rstrip("/").rsplit("/", 1)[-1].replace("-", "")
            if customer_uuid not in self.customers:
                missing = {"customer": ["Invalid hyperlink - Object does not exist."]}
                exchange.send_json(400, missing)
                return True
            uuid = self.add_project(customer_uuid, body["name"])
            exchange.send_json(201, self.projects[uuid])
            self.emit("project_creation_succeeded", project=uuid)
            return True
        if len(parts) != 2 or parts[0] not in ("customers", "projects"):
            return False
        kind, uuid = parts[0], parts[1].replace("-", "")
        table = self.customers if kind == "customers" else self.projects
        if method not in ("PATCH", "DELETE"):
            return False
        if uuid not in table:
            exchange.send_json(404, {"detail": "Not found."})
            return True
        if method == "PATCH":
            editable = ("name", "abbreviation", "blocked") if kind == "customers" else ("name",)
            table[uuid].update({k: v for k, v in body.items() if k in editable})
            exchange.send_json(200, table[uuid])
            if kind == "customers":
                self.emit("customer_update_succeeded", customer=uuid)
            else:
                self.emit("project_update_succeeded", project=uuid)
            return True
        # DELETE: the context is read before the object goes (Waldur's events carry it).
        if kind == "customers":
            context = self._context(customer=uuid)
            del self.customers[uuid]
            exchange.send(204, b"")
            self._deliver("customer_deletion_succeeded", context)
        else:
            context = self._context(project=uuid)
            self.emit("project_deletion_triggered", project=uuid)
            del self.projects[uuid]
            exchange.send(204, b"")
            self._deliver("project_deletion_succeeded", context)
        return True

    def _order_create(self, exchange: Exchange, body: dict[str, Any]) -> None:
        """``POST /api/marketplace-orders/ {"offering", "plan", "project", "attributes"}``
        (URLs) as a consumer sends it: a Create order waiting for the provider."""

        def uuid_of(field: str) -> str:
            return str(body.get(field) or "").rstrip("/").rsplit("/", 1)[-1].replace("-", "")

        offering = self.offering_of(uuid_of("offering"))
        project_uuid = uuid_of("project")
        plan = next(
            (p for p in (offering or {}).get("plans", []) if p["uuid"] == uuid_of("plan")), None
        )
        if offering is None or plan is None or project_uuid not in self.projects:
            exchange.send_json(400, {"non_field_errors": ["Invalid offering, plan or project."]})
            return
        uuid = self.add_order(offering["uuid"], project_uuid=project_uuid, plan=plan["backend_id"])
        order = self.orders[uuid]
        name = (body.get("attributes") or {}).get("name")
        if name:
            self.resources[order["marketplace_resource_uuid"]]["name"] = name
        exchange.send_json(201, order)
        self._deliver(
            "marketplace_order_created",
            {
                "order_uuid": uuid,
                "order_created": order["created"],
                "order_get_type_display": "Create",
                "order_get_state_display": "pending-provider",
                "offering_uuid": offering["uuid"],
                "offering_name": offering["name"],
                "resource_uuid": order["marketplace_resource_uuid"],
                **self._context(project=project_uuid),
            },
        )

    def _context(self, *, customer: str | None = None, project: str | None = None) -> dict:
        context: dict[str, Any] = {}
        if project is not None:
            found = self.projects[project]
            context.update(
                project_uuid=project,
                project_name=found["name"],
                project_end_date=found["end_date"],
            )
            customer = found["customer_uuid"]
        if customer is not None:
            found = self.customers[customer]
            context.update(
                customer_uuid=customer,
                customer_name=found["name"],
                customer_abbreviation=found["abbreviation"],
                customer_contact_details="",
            )
        return context

    def emit(self, event_type: str, **objects: str) -> None:
        """Fire ``event_type`` about ``customer=``/``project=`` (uuids) at the hooks."""
        self._deliver(event_type, self._context(**objects))

    def _deliver(self, event_type: str, context: dict[str, Any]) -> None:
        payload = {
            "created": datetime.now(UTC).isoformat(),
            "message": f"{event_type} (fake Waldur)",
            "context": context,
            "event_type": event_type,
        }
        targets = [
            hook["destination_url"]
            for hook in self.hooks.values()
            if hook.get("is_active", True) and event_type in hook.get("event_types", [])
        ]
        for url in targets:
            # From a thread, after the answer, as Waldur's Celery task would.
            threading.Thread(target=self._post, args=(event_type, url, payload)).start()

    def _post(self, event_type: str, url: str, payload: dict[str, Any]) -> None:
        try:
            status: int | str = httpx.post(url, json=payload, timeout=10.0).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        with self._lock:
            self.delivered.append((event_type, url, status))

    # --- offerings and plans ------------------------------------------------------------

    OFFERING_STATES = ("Draft", "Active", "Paused", "Unavailable", "Archived")
    # action → (states it may start from, state it leads to): mastermind's Offering.
    OFFERING_ACTIONS = {
        "activate": (("Draft", "Paused", "Unavailable"), "Active"),
        "pause": (("Active",), "Paused"),
        "unpause": (("Paused",), "Active"),
        "archive": (("Draft", "Active", "Paused", "Unavailable"), "Archived"),
        "draft": (("Active", "Paused", "Unavailable", "Archived"), "Draft"),
    }
    OVERVIEW_FIELDS = (
        "name", "description", "full_description", "privacy_policy_link", "helpdesk_url",
        "documentation_url", "access_url", "getting_started", "integration_guide", "slug",
        "backend_id",
    )  # fmt: skip
    COMPONENT_FIELDS = (
        "type", "name", "description", "measured_unit", "billing_type", "unit_factor",
        "limit_period", "limit_amount", "article_code", "max_value", "min_value",
        "is_boolean", "default_limit", "is_prepaid",
    )  # fmt: skip
    PLAN_FIELDS = ("name", "description", "unit", "unit_price", "backend_id", "article_code",
                   "max_amount", "archived")  # fmt: skip
    BILLING_TYPES = ("fixed", "usage", "limit", "one", "few")
    PLAN_UNITS = ("month", "quarter", "half_month", "day", "hour", "quantity")

    def offerings_with(self, backend_id: str) -> list[dict[str, Any]]:
        return [o for o in self.offerings.values() if o["backend_id"] == backend_id]

    def live_plans(self, offering: dict[str, Any]) -> list[dict[str, Any]]:
        return [p for p in self._plans_of(offering) if not p["archived"]]

    def _plans_of(self, offering: dict[str, Any]) -> list[dict[str, Any]]:
        return [p for p in self.plans.values() if p["offering_uuid"] == offering["uuid"]]

    def offering_view(self, offering: dict[str, Any]) -> dict[str, Any]:
        return {**offering, "plans": [dict(p) for p in self._plans_of(offering)]}

    @staticmethod
    def _trimmed(body: dict[str, Any], fields) -> dict[str, Any]:
        """What DRF stores: the known fields, texts trimmed."""
        return {k: (v.strip() if isinstance(v, str) else v) for k, v in body.items() if k in fields}

    def _component(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if body.get("billing_type") not in self.BILLING_TYPES or not body.get("type"):
            return None
        return {"uuid": uuidlib.uuid4().hex, **self._trimmed(body, self.COMPONENT_FIELDS)}

    def _plan(self, offering: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if not body.get("name") or body.get("unit", "month") not in self.PLAN_UNITS:
            return None
        uuid = uuidlib.uuid4().hex
        plan = {
            "url": f"{self.base_url}/api/marketplace-plans/{uuid}/",
            "uuid": uuid,
            "offering": offering["url"],
            "offering_uuid": offering["uuid"],
            "description": "",
            "unit": "month",
            "unit_price": "0",
            "backend_id": "",
            "archived": False,
            "is_active": True,
            **self._trimmed(body, self.PLAN_FIELDS),
            "prices": {},
            "future_prices": {},
            "quotas": {},
            "resources_count": 0,
            "init_price": 0,
            "switch_price": 0,
            "organization_groups": [],
            "components": [],
            "plan_type": "usage-based",
            "minimal_price": "0",
        }
        self.plans[uuid] = plan
        return plan

    def _offering_create(self, exchange: Exchange, body: dict[str, Any]) -> None:
        missing = [f for f in ("name", "category", "type") if not body.get(f)]
        if missing:
            return exchange.send_json(400, {f: ["This field is required."] for f in missing})
        components = [self._component(c) for c in body.get("components") or []]
        if None in components:
            return exchange.send_json(400, {"components": ["Invalid component."]})
        uuid = uuidlib.uuid4().hex
        customer = body.get("customer") or ""
        offering = {
            "url": f"{self.base_url}/api/marketplace-provider-offerings/{uuid}/",
            "uuid": uuid,
            "created": "2026-01-01T00:00:00Z",
            "name": body["name"].strip(),
            "description": "",
            "full_description": "",
            "getting_started": "",
            "access_url": "",
            "backend_id": "",
            **self._trimmed(body, self.OVERVIEW_FIELDS),
            "category": body["category"],
            "customer": customer,
            "customer_uuid": customer.rstrip("/").rsplit("/", 1)[-1],
            "type": body["type"],
            "shared": body.get("shared", True),
            "billable": body.get("billable", True),
            "state": "Draft",
            "paused_reason": "",
            "components": components,
        }
        self.offerings[uuid] = offering
        for plan in body.get("plans") or []:
            if self._plan(offering, plan) is None:
                return exchange.send_json(400, {"plans": ["Invalid plan."]})
        if self.lose_create_answers:
            self.lose_create_answers -= 1
            self.pause(self.slow_seconds)
        return exchange.send_json(201, self.offering_view(offering))

    def _handle_offerings(self, exchange: Exchange, method: str, parts: list[str]) -> bool:
        if method == "GET" and len(parts) == 2 and parts[0] == "marketplace-provider-offerings":
            seeded = self.seeded_offerings.get(parts[1].replace("-", ""))
            if seeded is not None:
                exchange.send_json(200, seeded)
                return True
        if parts[:1] == ["marketplace-provider-offerings"]:
            self._offering_endpoint(exchange, method, parts[1:])
            return True
        if parts[:1] == ["marketplace-plans"]:
            self._plan_endpoint(exchange, method, parts[1:])
            return True
        return False

    def _offering_endpoint(self, exchange: Exchange, method: str, rest: list[str]) -> None:
        body = exchange.request.json if exchange.request.body else {}
        if not rest:
            if method == "GET":
                self.pause(self.offerings_delay)
                wanted = exchange.request.query.get("customer_uuid", [None])[0]
                found = [
                    self.offering_view(o)
                    for o in self.offerings.values()
                    if wanted is None or o["customer_uuid"] == wanted.replace("-", "")
                ]
                return self._page(exchange, found)
            if method == "POST":
                return self._offering_create(exchange, body)
            return exchange.send_json(405, {"detail": "Method not allowed."})
        offering = self.offerings.get(rest[0].replace("-", ""))
        if offering is None:
            return exchange.send_json(404, {"detail": "Not found."})
        action = rest[1] if len(rest) > 1 else None
        if action is None and method == "GET":
            return exchange.send_json(200, self.offering_view(offering))
        if action is None and method == "DELETE":
            if offering["state"] != "Draft":
                return exchange.send_json(409, {"detail": "Only a Draft offering is deleted."})
            del self.offerings[offering["uuid"]]
            for plan in self._plans_of(offering):
                del self.plans[plan["uuid"]]
            return exchange.send(204, b"")
        if method != "POST" or action is None:
            return exchange.send_json(405, {"detail": "Method not allowed."})
        if action in self.OFFERING_ACTIONS:
            sources, target = self.OFFERING_ACTIONS[action]
            if offering["state"] not in sources:
                return exchange.send_json(
                    409, {"detail": f"Can't {action} an offering in state {offering['state']}."}
                )
            offering["state"] = target
            if action == "pause":
                offering["paused_reason"] = (body or {}).get("paused_reason", "")
            elif target == "Active":
                offering["paused_reason"] = ""
            return exchange.send_json(200, {"status": f"Offering has been {target.lower()}."})
        if action == "update_overview":
            if not body.get("name"):
                return exchange.send_json(400, {"name": ["This field is required."]})
            offering.update(self._trimmed(body, self.OVERVIEW_FIELDS))
            return exchange.send_json(200, {"status": "Offering has been updated."})
        if action == "update_description":
            if not body.get("category"):
                return exchange.send_json(400, {"category": ["This field is required."]})
            offering["category"] = body["category"]
            return exchange.send_json(200, {"status": "Offering has been updated."})
        if action == "create_offering_component":
            component = self._component(body)
            if component is None:
                return exchange.send_json(400, {"billing_type": ["Invalid component."]})
            if any(c["type"] == component["type"] for c in offering["components"]):
                return exchange.send_json(400, {"type": ["Component type is not unique."]})
            offering["components"].append(component)
            return exchange.send_json(201, component)
        if action == "update_offering_component":
            for component in offering["components"]:
                if component["uuid"] == str(body.get("uuid", "")).replace("-", ""):
                    component.update(self._trimmed(body, self.COMPONENT_FIELDS))
                    return exchange.send_json(200, component)
            return exchange.send_json(400, {"uuid": ["No such component."]})
        return exchange.send_json(404, {"detail": "Not found."})

    def _plan_endpoint(self, exchange: Exchange, method: str, rest: list[str]) -> None:
        body = exchange.request.json if exchange.request.body else {}
        if not rest:
            if method == "POST":
                offering = next(
                    (o for o in self.offerings.values() if o["url"] == body.get("offering")), None
                )
                if offering is None:
                    return exchange.send_json(400, {"offering": ["Invalid hyperlink."]})
                plan = self._plan(offering, body)
                if plan is None:
                    return exchange.send_json(400, {"name": ["Invalid plan."]})
                return exchange.send_json(201, plan)
            return exchange.send_json(405, {"detail": "Method not allowed."})
        plan = self.plans.get(rest[0].replace("-", ""))
        if plan is None:
            return exchange.send_json(404, {"detail": "Not found."})
        action = rest[1] if len(rest) > 1 else None
        if action is None and method == "GET":
            return exchange.send_json(200, plan)
        if action is None and method == "PATCH":
            plan.update(self._trimmed(body, self.PLAN_FIELDS))
            return exchange.send_json(200, plan)
        if method != "POST":
            return exchange.send_json(405, {"detail": "Method not allowed."})
        offering = self.offerings[plan["offering_uuid"]]
        if action == "update_prices":
            types = {c["type"] for c in offering["components"]}
            prices = body.get("prices")
            if not isinstance(prices, dict) or set(prices) - types:
                return exchange.send_json(400, {"prices": ["Unknown component type."]})
            stored = {k: f"{Decimal(str(v)):.7f}" for k, v in prices.items()}
            plan["future_prices" if plan["resources_count"] else "prices"].update(stored)
            return exchange.send_json(200, {"status": "Prices have been updated."})
        if action == "update_quotas":
            quotas = body.get("quotas")
            if not isinstance(quotas, dict):
                return exchange.send_json(400, {"quotas": ["Expected an object."]})
            plan["quotas"].update(quotas)
            return exchange.send_json(200, {"status": "Quotas have been updated."})
        if action == "archive":
            if plan["archived"]:
                return exchange.send_json(409, {"detail": "Plan is already archived."})
            plan["archived"] = True
            return exchange.send_json(200, {"status": "Plan has been archived."})
        return exchange.send_json(404, {"detail": "Not found."})

    # --- orders and resources ---------------------------------------------------------
    # Field names, states and transitions of waldur-api-client 8.1.3's OrderDetails,
    # OrderState, Resource, ResourceState, ResourceApiKeyStatus. Orders are for offerings
    # the registry published (``_handle_offerings``) or seeded here with ``add_offering``
    # (a minimal offering, for tests of the order processing alone).

    def _provider_of(self, resource: dict[str, Any]) -> str:
        offering = self.offering_of(resource["offering_uuid"])
        return offering["customer_uuid"] if offering else ""

    def add_offering(
        self, backend_id: str, *, plans: list[str], customer_uuid: str = PROVIDER_UUID
    ) -> str:
        """An offering of ``customer_uuid`` selling agent ``backend_id``; one Waldur plan
        per registry plan id in ``plans`` (its ``backend_id``)."""
        uuid = uuidlib.uuid4().hex
        self.seeded_offerings[uuid] = {
            "url": f"{self.base_url}/api/marketplace-provider-offerings/{uuid}/",
            "uuid": uuid,
            "name": backend_id,
            "backend_id": backend_id,
            "customer_uuid": customer_uuid,
            "type": "Marketplace.Slurm",
            "state": "Active",
            "plans": [self._seeded_plan(uuid, plan_id) for plan_id in plans],
        }
        return uuid

    def _seeded_plan(self, offering_uuid: str, backend_id: str) -> dict[str, Any]:
        uuid = uuidlib.uuid4().hex
        return {
            "url": f"{self.base_url}/api/marketplace-plans/{uuid}/",
            "uuid": uuid,
            "name": f"plan {backend_id}",
            "backend_id": backend_id,
            "archived": False,
            "unit": "month",
        }

    def offering_of(self, uuid: str) -> dict[str, Any] | None:
        """A seeded offering, or one the registry published (with its plans)."""
        key = uuid.replace("-", "")
        if key in self.seeded_offerings:
            return self.seeded_offerings[key]
        return self.offering_view(self.offerings[key]) if key in self.offerings else None

    def plan_uuid(self, offering_uuid: str, backend_id: str) -> str:
        plans = self.offering_of(offering_uuid)["plans"]  # type: ignore[index]
        return next(p["uuid"] for p in plans if p["backend_id"] == backend_id)

    def add_order(
        self,
        offering_uuid: str,
        *,
        project_uuid: str,
        plan: str | None = None,
        type_: str = "Create",
        resource_uuid: str | None = None,
        state: str = "pending-provider",
    ) -> str:
        """An order as a consumer makes it. ``plan`` is the registry plan id (the Waldur
        plan's backend_id); a Create makes its resource (``Creating``)."""
        offering = self.offering_of(offering_uuid)
        assert offering is not None, f"no offering {offering_uuid}"
        project = self.projects[project_uuid]
        plan_uuid = self.plan_uuid(offering_uuid, plan) if plan else None
        if type_ == "Create":
            resource_uuid = uuidlib.uuid4().hex
            self.resources[resource_uuid] = {
                "url": f"{self.base_url}/api/marketplace-provider-resources/{resource_uuid}/",
                "uuid": resource_uuid,
                "name": f"subscription {len(self.resources) + 1}",
                "state": "Creating",
                "paused": False,
                "backend_id": "",
                "offering_uuid": offering_uuid,
                "plan_uuid": plan_uuid,
                "project_uuid": project_uuid,
                "customer_uuid": project["customer_uuid"],
                "endpoints": [],
                "backend_metadata": {},
                "limits": {},
            }
        assert resource_uuid is not None, "Update/Terminate/Restore name their resource"
        resource = self.resources[resource_uuid]
        uuid = uuidlib.uuid4().hex
        self.orders[uuid] = {
            "url": f"{self.base_url}/api/marketplace-orders/{uuid}/",
            "uuid": uuid,
            "type": type_,
            "state": state,
            "offering": offering["url"],
            "offering_uuid": offering_uuid,
            "offering_name": offering["name"],
            "provider_uuid": offering["customer_uuid"],
            "plan_uuid": plan_uuid or resource["plan_uuid"],
            "old_plan_uuid": resource["plan_uuid"] if type_ == "Update" else None,
            "new_plan_uuid": plan_uuid if type_ == "Update" else None,
            "marketplace_resource_uuid": resource_uuid,
            "resource_uuid": resource_uuid,
            "resource_name": resource["name"],
            "project_uuid": project_uuid,
            "project_name": project["name"],
            "customer_uuid": project["customer_uuid"],
            "customer_name": project["customer_name"],
            "created_by_username": "consumer",
            "created_by_email": "consumer@example.org",
            "attributes": {},
            "limits": {},
            "backend_id": "",
            "error_message": "",
            "error_traceback": "",
            "provider_rejection_comment": "",
            "created": "2026-12-01T00:00:00Z",
        }
        return uuid

    def key_for(self, resource_uuid: str) -> str | None:
        """The value Waldur holds for the resource's (only) key, as the consumer sees it."""
        found = [k for k in self.api_keys.values() if k["resource_uuid"] == resource_uuid]
        assert len(found) <= 1, f"{len(found)} keys for one resource"
        return self.key_values[found[0]["uuid"]] if found else None

    _ORDER_MOVES = {  # action → (states it moves from, the state it moves to)
        "approve_by_provider": ({"pending-provider"}, "executing"),
        "reject_by_provider": ({"pending-provider"}, "rejected"),
        "set_state_executing": ({"pending-provider", "pending-consumer"}, "executing"),
        "set_state_done": ({"executing"}, "done"),
        "set_state_erred": ({"pending-provider", "executing"}, "erred"),
    }

    def _handle_orders(self, exchange: Exchange, method: str, parts: list[str]) -> bool:
        path = exchange.request.path
        for suffix, fault in self.path_faults.items():
            if path.endswith(suffix) and fault == "echo400":  # a 400 quoting the body
                exchange.send_json(400, {"detail": "Invalid.", "received": exchange.request.json})
                return True
            if path.endswith(suffix):
                saved, self.fault = self.fault, fault
                try:
                    if self._fail(exchange):
                        return True
                finally:
                    self.fault = saved
        query = exchange.request.query
        key = parts[1].replace("-", "") if len(parts) > 1 else ""
        if method == "GET" and parts == ["marketplace-orders"]:
            found = [
                o
                for o in self.orders.values()
                if _matches(o["state"], query.get("state"))
                and _matches(o["offering_uuid"], query.get("offering_uuid"))
                and _matches(o["provider_uuid"], query.get("provider_uuid"))
            ]
            self._page(exchange, found)
            return True
        if parts[:1] == ["marketplace-orders"] and len(parts) in (2, 3):
            order = self.orders.get(key)
            if order is None:
                exchange.send_json(404, {"detail": "Not found."})
            elif method == "GET" and len(parts) == 2:
                exchange.send_json(200, order)
            elif method == "POST" and len(parts) == 3:
                self._order_action(exchange, order, parts[2])
            else:
                return False
            return True
        if method == "GET" and parts == ["marketplace-provider-resources"]:
            provider = query.get("provider_uuid")
            found = [r for r in self.resources.values() if _matches(self._provider_of(r), provider)]
            self._page(exchange, found)
            return True
        if parts[:1] == ["marketplace-provider-resources"] and len(parts) in (2, 3):
            resource = self.resources.get(key)
            body = exchange.request.json or {}
            if resource is None:
                exchange.send_json(404, {"detail": "Not found."})
            elif method == "GET" and len(parts) == 2:
                exchange.send_json(200, resource)
            elif method == "POST" and parts[2:] == ["set_backend_id"]:
                resource["backend_id"] = body.get("backend_id", "")
                exchange.send_json(200, {"status": "Resource backend_id has been changed."})
            elif method == "POST" and parts[2:] == ["set_endpoints"]:
                resource["endpoints"] = [
                    {"uuid": uuidlib.uuid4().hex, "name": e["name"], "url": e["url"]}
                    for e in body["endpoints"]
                ]
                exchange.send_json(200, {"status": "Endpoints have been set."})
            else:
                return False
            return True
        if parts[:1] == ["marketplace-resource-api-keys"]:
            return self._handle_api_keys(exchange, method, parts)
        return False

    def _order_action(self, exchange: Exchange, order: dict[str, Any], action: str) -> None:
        body = exchange.request.json or {}
        if action == "set_backend_id":
            order["backend_id"] = body["backend_id"]
            exchange.send_json(200, {"status": "Order backend_id has been changed."})
            return
        if action not in self._ORDER_MOVES:
            exchange.send_json(404, {"detail": "Not found."})
            return
        sources, target = self._ORDER_MOVES[action]
        if order["state"] not in sources:
            exchange.send_json(400, {"detail": f"Order is {order['state']}; cannot {action}."})
            return
        order["state"] = target
        resource = self.resources[order["marketplace_resource_uuid"]]
        if action == "reject_by_provider":
            order["provider_rejection_comment"] = body.get("provider_rejection_comment", "")
            if order["type"] == "Create":
                resource["state"] = "Terminated"
        elif action == "set_state_erred":
            order["error_message"] = body.get("error_message", "")
            order["error_traceback"] = body.get("error_traceback", "")
            if order["type"] == "Create":
                resource["state"] = "Erred"
        elif action == "set_state_done":
            if order["type"] == "Terminate":
                resource["state"] = "Terminated"
            else:
                resource["state"] = "OK"
                resource["plan_uuid"] = order["plan_uuid"]
        exchange.send_json(200, {})

    def _handle_api_keys(self, exchange: Exchange, method: str, parts: list[str]) -> bool:
        body = exchange.request.json or {}
        if method == "GET" and len(parts) == 1:
            wanted = exchange.request.query.get("resource_uuid")
            self._page(
                exchange,
                [k for k in self.api_keys.values() if _matches(k["resource_uuid"], wanted)],
            )
            return True
        if method == "POST" and parts[1:] == ["report_created"]:
            resource_uuid = str(body.get("resource", "")).replace("-", "")
            if resource_uuid not in self.resources or not body.get("client_id"):
                exchange.send_json(400, {"resource": ["Invalid resource or client_id."]})
                return True
            same = [
                k
                for k in self.api_keys.values()
                if k["resource_uuid"] == resource_uuid and k["client_id"] == body["client_id"]
            ]
            if same:  # idempotent per resource + client_id: the stored value stays
                exchange.send_json(201, same[0])
                return True
            uuid = uuidlib.uuid4().hex
            self.api_keys[uuid] = {
                "uuid": uuid,
                "resource_uuid": resource_uuid,
                "resource_backend_id": self.resources[resource_uuid]["backend_id"],
                "client_id": body["client_id"],
                "state": "OK",
                "pending_action": "",
                "modified": "2026-12-01T00:00:00Z",
                "issued_at": "2026-12-01T00:00:00Z",
                "user_uuid": None,
                "user_full_name": None,
                "limits": None,
                "allowed_models": None,
                "current_usages": None,
                "usage_period": None,
                "paused_by_limit": None,
                "error_message": "",
            }
            self.key_values[uuid] = body["api_key"]
            exchange.send_json(201, self.api_keys[uuid])
            return True
        if method == "POST" and len(parts) == 3 and parts[2] == "set_key":
            found = self.api_keys.get(parts[1].replace("-", ""))
            if found is None:
                exchange.send_json(404, {"detail": "Not found."})
                return True
            self.key_values[found["uuid"]] = body["api_key"]
            found["state"] = "OK"
            exchange.send_json(200, found)
            return True
        return False


def _matches(value: str, wanted: list[str] | None) -> bool:
    """A query filter: absent matches all; uuids compare without dashes."""
    if not wanted:
        return True
    return value.replace("-", "") in {w.replace("-", "") for w in wanted}
