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

``fault`` makes the next ``fault_count`` calls (all by default) fail: ``"timeout"``
(sleep past the client's timeout), ``"500"``, ``"429"``, ``"400"``, ``"garbage"``.
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
        # --- usage: marketplace resources (uuid hex → Resource fields) and the component
        # usages set on them ((resource uuid hex, component type, "YYYY-MM-01") → ComponentUsage)
        self.resources: dict[str, dict[str, Any]] = {}
        self.component_usages: dict[tuple[str, str, str], dict[str, Any]] = {}
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
        elif self.fault in ("500", "429", "400"):
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
        """Staff changes to customers and projects (each fires its events); True if served."""
        body = exchange.request.json if exchange.request.body else {}
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
