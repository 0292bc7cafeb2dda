"""A fake Waldur MasterMind speaking the REST API the registry's adapter uses.

Field names are Waldur's (waldur-api-client 8.1.3's models: ``Customer``, ``Project``,
``CustomerUser``, ``WebHook``). Served: ``GET /api/customers/``, ``/api/customers/<uuid>/``,
``/api/customers/<uuid>/users/``, ``/api/projects/``, ``/api/projects/<uuid>/``,
``GET|POST /api/hooks-web/``, ``PATCH /api/hooks-web/<uuid>/``; paging by ``page`` and
``page_size``; ``Authorization: Token <TOKEN>`` required (401 otherwise).

Changing the world through the API (``POST|PATCH|DELETE /api/customers/…`` and
``/api/projects/…``, as a staff user would in Waldur's UI) fires the matching events
at every active hook registered in ``/api/hooks-web/`` whose ``event_types`` include
it: one plain JSON POST ``{"created", "message", "context", "event_type"}`` with
flattened ``customer_*``/``project_*`` context keys, no signature, no retry — as
Waldur does (``delivered`` records each delivery's destination and status). The
``add_*`` helpers change the world silently, as a lost hook would.

``fault`` makes the next ``fault_count`` calls (all by default) fail: ``"timeout"``
(sleep past the client's timeout), ``"500"``, ``"429"``, ``"400"``, ``"garbage"``.
"""

from __future__ import annotations

import json
import threading
import uuid as uuidlib
from datetime import UTC, datetime
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
        if self._handle_world(exchange, method, parts):
            return
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
        exchange.send_json(404, {"detail": "Not found."})

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
