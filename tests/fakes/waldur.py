"""A fake Waldur MasterMind speaking the REST API the registry's adapter uses.

Field names are Waldur's (waldur-api-client 8.1.3's models: ``Customer``, ``Project``,
``CustomerUser``, ``WebHook``). Served: ``GET /api/customers/``, ``/api/customers/<uuid>/``,
``/api/customers/<uuid>/users/``, ``/api/projects/``, ``/api/projects/<uuid>/``,
``GET|POST /api/hooks-web/``, ``PATCH /api/hooks-web/<uuid>/``; usage:
``POST /api/marketplace-component-usages/set_usage/`` and
``GET /api/marketplace-component-usages/?resource_uuid=&billing_period=`` (``_handle_usage``);
paging by ``page`` and ``page_size``; ``Authorization: Token <TOKEN>`` required (401 otherwise).

``fault`` makes the next ``fault_count`` calls (all by default) fail: ``"timeout"``
(sleep past the client's timeout), ``"500"``, ``"429"``, ``"400"``, ``"garbage"``.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.fakes.http_server import Exchange, FakeHTTPServer

TOKEN = "fake-waldur-token"


class FakeWaldur(FakeHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.customers: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.users: dict[str, list[dict[str, Any]]] = {}  # customer uuid → CustomerUser
        self.hooks: dict[str, dict[str, Any]] = {}
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
