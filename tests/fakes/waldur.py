"""A fake Waldur MasterMind speaking the REST API the registry's adapter uses.

Field names are Waldur's (waldur-api-client 8.1.3's models: ``Customer``, ``Project``,
``CustomerUser``, ``WebHook``). Served: ``GET /api/customers/``, ``/api/customers/<uuid>/``,
``/api/customers/<uuid>/users/``, ``/api/projects/``, ``/api/projects/<uuid>/``,
``GET|POST /api/hooks-web/``, ``PATCH /api/hooks-web/<uuid>/``; paging by ``page`` and
``page_size``; ``Authorization: Token <TOKEN>`` required (401 otherwise).

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
import uuid as uuidlib
from typing import Any

from tests.fakes.http_server import Exchange, FakeHTTPServer

TOKEN = "fake-waldur-token"
# The service provider's customer (WALDUR_PROVIDER_CUSTOMER_UUID in the tests).
PROVIDER_UUID = "5e1f0c1b2a3d4e5f60718293a4b5c6d7"


class FakeWaldur(FakeHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.customers: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.users: dict[str, list[dict[str, Any]]] = {}  # customer uuid → CustomerUser
        self.hooks: dict[str, dict[str, Any]] = {}
        # Orders and resources (``_handle_orders``; seeded with add_offering/add_order).
        self.seeded_offerings: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.resources: dict[str, dict[str, Any]] = {}
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
        if self._handle_orders(exchange, method, parts):
            return
        exchange.send_json(404, {"detail": "Not found."})

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

    # --- orders and resources ---------------------------------------------------------
    # Field names, states and transitions of waldur-api-client 8.1.3's OrderDetails,
    # OrderState, Resource, ResourceState, ResourceApiKeyStatus. The provider offering GET
    # here is minimal (for the order processing); the publishing side serves the full
    # offering: merge the two when both exist.

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
            "plans": [self._plan(uuid, plan_id) for plan_id in plans],
        }
        return uuid

    def _plan(self, offering_uuid: str, backend_id: str) -> dict[str, Any]:
        uuid = uuidlib.uuid4().hex
        return {
            "url": f"{self.base_url}/api/marketplace-plans/{uuid}/",
            "uuid": uuid,
            "name": f"plan {backend_id}",
            "backend_id": backend_id,
            "archived": False,
            "unit": "month",
        }

    def plan_uuid(self, offering_uuid: str, backend_id: str) -> str:
        plans = self.seeded_offerings[offering_uuid]["plans"]
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
        offering = self.seeded_offerings[offering_uuid]
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
            found = [
                r
                for r in self.resources.values()
                if _matches(self.seeded_offerings[r["offering_uuid"]]["customer_uuid"], provider)
            ]
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
        if method == "GET" and len(parts) == 2 and parts[0] == "marketplace-provider-offerings":
            offering = self.seeded_offerings.get(key)
            if offering is None:
                return False  # perhaps the publishing side's (see the comment above)
            exchange.send_json(200, offering)
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
