"""Walk the document's "Waldur E2E Testing Checklist" (section 1.3), line by line.

Against the fake Waldur (the default): starts ``tests/fakes/waldur.py`` on loopback and a
throwaway registry (SQLite in a temporary directory, uvicorn on a free port, the
integration pointed at the fake), then walks every line through HTTP only: Waldur's REST
API as a staff user would use it, the registry's API with an operator token, hooks
delivered by the fake exactly as Waldur delivers them, and the registry's commands
(``aggregate_usage``, ``close_billing_cycle``, ``waldur_push_usage`` …) as an operator
or the scheduler would run them.

    .venv/bin/python samples/waldur_e2e_test.py

Against a real Waldur (a QA instance): run it where ``manage.py`` reaches the deployed
registry's database (its container), with the registry configured for that Waldur
(docs/waldur.md "Setup in Waldur") and reachable by Waldur's hooks::

    WALDUR_API_URL=https://waldur.example.org WALDUR_API_TOKEN=<staff token> \\
    REGISTRY_URL=https://registry.example.org REGISTRY_TOKEN=<operator token> \\
    python samples/waldur_e2e_test.py

It creates a customer, a project, an agent, an offering and an order named
``e2e-<random>`` in that Waldur and leaves them for inspection (archive them by hand).
Fault injection (a Waldur timeout, a failing usage push) is only possible against the
fake; against a real Waldur those lines are reported as skipped.

Prints one line per checklist item (``ok``, ``FAIL`` or ``skip``) and a summary; exits 1
when a line failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAIT_SECONDS = 20.0


class CheckFailed(AssertionError):
    pass


def expect(condition: bool, detail: str) -> None:
    if not condition:
        raise CheckFailed(detail)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    """``probe()``'s first truthy answer; CheckFailed after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(0.2)


# --- The two sides: Waldur and the registry -----------------------------------------


class Waldur:
    """Waldur's REST API, as the staff user of the checklist uses it."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url + "/api",
            headers={"Authorization": f"Token {token}"},
            timeout=30.0,
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code >= 400:
            raise CheckFailed(f"Waldur {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def url(self, kind: str, uuid: str) -> str:
        return f"{self.base_url}/api/{kind}/{uuid}/"


class CommandRunner:
    """``manage.py`` commands through scripts/manage_runner.py: one Django process for
    the whole walk instead of one per command (its start-up is most of a command's time).
    Answers as ``subprocess.run`` would."""

    def __init__(self, env: dict[str, str], log: IO[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "scripts/manage_runner.py"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess:
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:  # never: both are pipes (for the type checker)
            raise CheckFailed("the command runner has no pipes")
        stdin.write(json.dumps({"argv": list(args)}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise CheckFailed(f"manage.py {' '.join(args)}: the command runner died")
        answer = json.loads(line)
        return subprocess.CompletedProcess(
            ["manage.py", *args], answer["returncode"], answer["stdout"], answer["stderr"]
        )

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Registry:
    """The registry's API (operator token) and its ``manage.py`` commands."""

    def __init__(
        self,
        base_url: str,
        token: str,
        manage: list[str] | CommandRunner,
        env: dict[str, str],
    ):
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Token {token}"},
            timeout=30.0,
        )
        self.manage_with = manage
        self.env = env

    def call(self, method: str, path: str, expected: int = 200, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code != expected:
            raise CheckFailed(
                f"registry {method} {path}: {response.status_code} (expected {expected}) "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else None

    def manage(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        if isinstance(self.manage_with, CommandRunner):
            done = self.manage_with.run(*args)
        else:
            done = subprocess.run(
                [*self.manage_with, *args],
                env=self.env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
        if ok and done.returncode != 0:
            raise CheckFailed(
                f"manage.py {' '.join(args)} exited {done.returncode}: "
                f"{(done.stdout + done.stderr)[-500:]}"
            )
        return done

    def first(self, path: str, **params: Any) -> dict | None:
        page = self.call("GET", path, params=params)
        items = page["results"] if isinstance(page, dict) and "results" in page else page
        return items[0] if items else None


# --- The fake world ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fake_world() -> Iterator[tuple[Waldur, Registry, Any]]:
    """The fake Waldur and a throwaway registry wired to it; both stopped at the end."""
    from tests.fakes.waldur import CATEGORY_UUID, TOKEN, FakeWaldur

    fake = FakeWaldur().start()
    provider = fake.add_customer("E2E Provider", abbreviation="e2e-provider")
    category = CATEGORY_UUID
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="waldur-e2e-") as tmp:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("WALDUR_", "REDIS_", "CELERY_", "DATABASE_", "STRIPE_"))
        }
        env.update(
            DATABASE_URL=f"sqlite:///{tmp}/registry.sqlite3",
            PORT=str(port),
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            WALDUR_API_URL=fake.base_url,
            WALDUR_API_TOKEN=TOKEN,
            WALDUR_PROVIDER_CUSTOMER_UUID=provider,
            WALDUR_CATEGORY_UUID=category,
            WALDUR_WEBHOOK_SECRET=secrets.token_hex(24),
            WALDUR_TIMEOUT="2",
            RUNTIME_ALLOW_PRIVATE_NETWORKS="true",
            PYTHONUNBUFFERED="1",
        )
        print(f"fake Waldur at {fake.base_url}; registry at http://127.0.0.1:{port} (SQLite)")
        log = open(Path(tmp) / "registry.log", "w")  # noqa: SIM115  (closed below)
        manage = CommandRunner(env, log)
        server = None
        try:
            migrated = manage.run("migrate", "--noinput", "-v", "0")
            if migrated.returncode:
                raise CheckFailed(f"manage.py migrate: {migrated.stdout}{migrated.stderr}")
            issued = manage.run("issue_token", "e2e-operator", "--staff", "--name", "e2e")
            if issued.returncode:
                raise CheckFailed(f"manage.py issue_token: {issued.stdout}{issued.stderr}")
            token = issued.stdout.strip().splitlines()[-1]
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "agent_registry.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            registry = Registry(f"http://127.0.0.1:{port}", token, manage, env)
            wait_for("the registry's readiness", lambda: _ready(registry), timeout=60)
            yield Waldur(fake.base_url, TOKEN), registry, fake
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
            manage.close()
            log.close()
            fake.stop()


def _ready(registry: Registry) -> bool:
    try:
        return registry.http.get("/health/ready").status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def real_world() -> Iterator[tuple[Waldur, Registry, None]]:
    manage = shlex.split(os.environ.get("REGISTRY_MANAGE", f"{sys.executable} manage.py"))
    registry = Registry(
        os.environ["REGISTRY_URL"], os.environ["REGISTRY_TOKEN"], manage, dict(os.environ)
    )
    yield Waldur(os.environ["WALDUR_API_URL"], os.environ["WALDUR_API_TOKEN"]), registry, None


# --- The checklist --------------------------------------------------------------------


class Walk:
    def __init__(self, waldur: Waldur, registry: Registry, fake: Any) -> None:
        self.waldur, self.registry, self.fake = waldur, registry, fake
        self.results: list[tuple[str, str, str]] = []
        self.name = f"e2e-{secrets.token_hex(3)}"
        self.state: dict[str, Any] = {}

    def line(self, text: str, check: Callable[[], str | None], *, fake_only: bool = False):
        if fake_only and self.fake is None:
            self.results.append(("skip", text, "needs fault injection (fake Waldur only)"))
            print(f"  skip  {text}")
            return
        try:
            detail = check() or ""
        except (CheckFailed, httpx.HTTPError, KeyError, subprocess.SubprocessError) as exc:
            self.results.append(("FAIL", text, str(exc)))
            print(f"  FAIL  {text}\n        {exc}")
            return
        self.results.append(("ok", text, detail))
        print(f"  ok    {text}" + (f"  ({detail})" if detail else ""))

    def section(self, title: str) -> None:
        print(f"\n{title}")

    # -- pre-requisites --

    def waldur_reachable(self) -> str:
        self.waldur.call("GET", "/customers/", params={"page_size": 1})
        return self.waldur.base_url

    def hooks_registered(self) -> str:
        self.registry.manage("waldur_register_hooks")
        hooks = self.waldur.call("GET", "/hooks-web/")
        mine = [
            h
            for h in hooks
            if "/api/v1/webhooks/waldur/" in h["destination_url"]
            and h["destination_url"].startswith(self.registry.base_url)
        ]
        expect(len(mine) == 1, f"expected one hook to the registry, found {len(mine)}")
        return f"{len(mine[0]['event_types'])} event types"

    def registry_ready(self) -> str:
        checks = self.registry.call("GET", "/health/ready")["checks"]
        expect("waldur" in checks, "readiness does not report Waldur")
        return f"waldur: {checks['waldur'].get('status', 'ok')}"

    # -- tenants and projects --

    def tenant(self) -> dict | None:
        uuid = self.state["customer"]
        tenants = self.registry.call("GET", "/api/v1/tenants/", params={"page_size": 500})
        items = tenants["results"] if isinstance(tenants, dict) else tenants
        return next(
            (
                t
                for t in items
                if (t["waldur_customer_uuid"] or "").replace("-", "") == uuid.replace("-", "")
            ),
            None,
        )

    def customer_create(self) -> str:
        made = self.waldur.call(
            "POST", "/customers/", json={"name": self.name, "abbreviation": self.name}
        )
        self.state["customer"] = made["uuid"]
        tenant = wait_for("the tenant of the new customer", self.tenant)
        self.state["tenant"] = tenant["slug"]
        return f"tenant {tenant['slug']}"

    def customer_update(self) -> str:
        renamed = f"{self.name} renamed"
        self.waldur.call("PATCH", f"/customers/{self.state['customer']}/", json={"name": renamed})
        wait_for("the rename", lambda: (self.tenant() or {}).get("name") == renamed)
        return renamed

    def project(self, uuid: str) -> dict | None:
        projects = self.registry.call(
            "GET", "/api/v1/projects/", params={"tenant": self.state["tenant"]}
        )
        items = projects["results"] if isinstance(projects, dict) else projects
        return next(
            (
                p
                for p in items
                if (p["waldur_project_uuid"] or "").replace("-", "") == uuid.replace("-", "")
            ),
            None,
        )

    def project_create(self) -> str:
        for key in ("project", "spare_project"):
            made = self.waldur.call(
                "POST",
                "/projects/",
                json={
                    "name": f"{self.name} {key}",
                    "customer": self.waldur.url("customers", self.state["customer"]),
                },
            )
            self.state[key] = made["uuid"]
            found = wait_for("the project", lambda u=made["uuid"]: self.project(u))
            self.state[f"{key}_id"] = found["id"]
        return "2 projects"

    def project_archive(self) -> str:
        uuid = self.state["spare_project"]
        self.waldur.call("DELETE", f"/projects/{uuid}/")
        wait_for(
            "the archive",
            lambda: (self.project(uuid) or {"is_active": False}).get("is_active") is False,
        )
        return "inactive"

    # -- the agent and its offering --

    def agent_register(self) -> str:
        provider = self.registry.call(
            "POST",
            "/api/v1/tenants/",
            201,
            json={"name": f"{self.name} provider", "slug": f"{self.name}-provider"},
        )
        project = self.registry.call(
            "POST", "/api/v1/projects/", 201, json={"tenant": provider["slug"], "name": "agents"}
        )
        agent = self.registry.call(
            "POST",
            "/api/v1/agents/",
            201,
            json={
                "agent_id": f"{self.name}-agent",
                "name": f"{self.name} agent",
                "description": "Answers with what it is told (checklist walk).",
                "category": "testing",
                "project": project["id"],
                "version": "1.0.0",
                "runtime": {"type": "echo"},
            },
        )
        self.state["agent"] = agent["agent_id"]
        plan = self.registry.call(
            "POST",
            f"/api/v1/agents/{agent['agent_id']}/plans/",
            201,
            json={
                "name": "Pay as you go",
                "billing_model": "usage",
                "currency": "USD",
                "price_cents": 0,
                "price_per_call": "0.0125",
                "price_per_1k_tokens": "0.002",
                "monthly_quota": None,
                "rate_limit_per_second": 20,
            },
        )
        self.state["plan"] = plan["id"]
        return agent["agent_id"]

    def agent_deploy(self) -> str:
        agent = self.registry.call("POST", f"/api/v1/agents/{self.state['agent']}/deploy/")
        expect(agent["state"] == "deployed", f"state {agent['state']}")
        return "deployed"

    def agent_publish(self) -> str:
        agent = self.registry.call("POST", f"/api/v1/agents/{self.state['agent']}/publish/")
        expect(agent["state"] == "listed", f"state {agent['state']}")
        return "listed"

    def offering(self) -> dict:
        found = self.waldur.call(
            "GET", "/marketplace-provider-offerings/", params={"backend_id": self.state["agent"]}
        )
        found = [o for o in found if o.get("backend_id") == self.state["agent"]]
        expect(len(found) == 1, f"expected one offering, found {len(found)}")
        return found[0]

    def offering_texts(self) -> str:
        offering = self.offering()
        self.state["offering"] = offering["uuid"]
        expect(offering["name"] == f"{self.name} agent", f"name {offering['name']!r}")
        expect("Answers with what it is told" in offering["description"], "description")
        return offering["uuid"]

    def offering_category(self) -> str:
        offering = self.offering()
        category = os.environ.get("WALDUR_CATEGORY_UUID") or self.registry.env.get(
            "WALDUR_CATEGORY_UUID", ""
        )
        expect(
            category.replace("-", "") in offering["category"].replace("-", ""),
            f"category {offering['category']}",
        )
        return offering["category"]

    def offering_plans(self) -> str:
        offering = self.offering()
        plans = [p for p in offering["plans"] if not p.get("archived")]
        expect(len(plans) == 1, f"{len(plans)} plans")
        plan = plans[0]
        self.state["waldur_plan"] = plan["uuid"]
        prices = {k: Decimal(str(v)) for k, v in (plan.get("prices") or {}).items()}
        expect(prices.get("api_calls") == Decimal("0.0125"), f"prices {prices}")
        expect(prices.get("input_tokens") == Decimal("0.0002"), f"prices {prices}")
        return ", ".join(f"{k} {v}" for k, v in sorted(prices.items()))

    def agent_activate(self) -> str:
        agent = self.registry.call("POST", f"/api/v1/agents/{self.state['agent']}/activate/")
        expect(agent["state"] == "active", f"state {agent['state']}")
        expect(self.offering()["state"] == "Active", f"offering {self.offering()['state']}")
        return "active; offering Active"

    # -- the order --

    def order_create(self) -> str:
        order = self.waldur.call(
            "POST",
            "/marketplace-orders/",
            json={
                "offering": self.waldur.url("marketplace-public-offerings", self.state["offering"]),
                "plan": self.waldur.url("marketplace-public-plans", self.state["waldur_plan"]),
                "project": self.waldur.url("projects", self.state["project"]),
                "attributes": {"name": f"{self.name} subscription"},
                "accepting_terms_of_service": True,
            },
        )
        self.state["order"] = order["uuid"]
        return order["uuid"]

    def order_done(self) -> str:
        def done() -> dict | None:
            order = self.waldur.call("GET", f"/marketplace-orders/{self.state['order']}/")
            return order if order["state"] == "done" else None

        if self.fake is not None or os.environ.get("E2E_PROCESS_ORDERS", "1") == "1":
            # The hook already triggered a pass; one more by hand changes nothing if so.
            self.registry.manage("waldur_process_orders")
        order = wait_for("the order's completion", done, timeout=60)
        self.state["resource"] = order["marketplace_resource_uuid"]
        return f"order done, resource {order['marketplace_resource_uuid']}"

    def access_created(self) -> str:
        access = self.registry.first("/api/v1/subscriptions/", tenant=self.state["tenant"])
        expect(access is not None, "no subscription in the tenant")
        expect(access["status"] == "active", f"status {access['status']}")
        expect(access["billing_channel"] == "waldur", f"channel {access['billing_channel']}")
        self.state["access"] = access["id"]
        return f"{access['key_prefix']}… on {access['agent']}"

    def key_handed_back(self) -> str:
        keys = self.waldur.call(
            "GET",
            "/marketplace-resource-api-keys/",
            params={"resource_uuid": self.state["resource"]},
        )
        expect(len(keys) == 1, f"{len(keys)} keys reported for the resource")
        revealed = self.waldur.call(
            "GET", f"/marketplace-resource-api-keys/{keys[0]['uuid']}/reveal/"
        )
        self.state["api_key"] = revealed["api_key"]
        resource = self.waldur.call(
            "GET", f"/marketplace-provider-resources/{self.state['resource']}/"
        )
        text = repr(resource)
        expect(revealed["api_key"] not in text, "the key is visible on the resource")
        return "revealed to the consumer; not on the resource"

    # -- usage and billing --

    def calls(self) -> str:
        gateway = httpx.Client(base_url=self.registry.base_url, timeout=30.0)
        for i in range(5):
            response = gateway.post(
                f"/api/v1/agents/{self.state['agent']}/invoke",
                headers={"X-API-Key": self.state["api_key"]},
                json={"input": f"hello {i}"},
            )
            expect(response.status_code == 200, f"call {i}: {response.status_code} {response.text}")
        return "5 calls answered 200"

    def usage_records(self) -> str:
        def five() -> bool:
            page = self.registry.call(
                "GET", "/api/v1/usage/records/", params={"subscription": self.state["access"]}
            )
            return page["count"] >= 5 if isinstance(page, dict) else len(page) >= 5

        wait_for("five usage records", five)
        return "5 records"

    def aggregate(self) -> str:
        done = self.registry.manage("aggregate_usage")
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def daily(self) -> str:
        row = self.registry.first("/api/v1/usage/daily/", tenant=self.state["tenant"])
        expect(row is not None and row["total_requests"] >= 5, f"daily summary {row}")
        return f"{row['total_requests']} requests"

    def billing_sync(self) -> str:
        self.registry.manage("close_billing_cycle")
        done = self.registry.manage("waldur_push_usage")
        return done.stdout.strip().splitlines()[-1]

    def snapshot_synced(self) -> str:
        snapshot = self.registry.first("/api/v1/usage/snapshots/", tenant=self.state["tenant"])
        expect(snapshot is not None, "no snapshot")
        expect(snapshot["synced_to_waldur"] is True, f"not synced: {snapshot.get('sync_error')}")
        usages = self.waldur.call(
            "GET",
            "/marketplace-component-usages/",
            params={"resource_uuid": self.state["resource"]},
        )
        calls = [u for u in usages if u["type"] == "api_calls"]
        expect(calls and Decimal(str(calls[0]["usage"])) == Decimal(5), f"Waldur holds {usages}")
        return "Waldur holds api_calls 5.00"

    # -- error handling --

    def wrong_secret(self) -> str:
        response = httpx.post(
            f"{self.registry.base_url}/api/v1/webhooks/waldur/wrong-secret/",
            json={"event_type": "customer_update_succeeded", "created": "x", "context": {}},
            timeout=10,
        )
        expect(response.status_code == 403, f"{response.status_code}")
        expect(response.json()["error"]["code"] == "forbidden", response.text)
        return "403 forbidden"

    def duplicate_hook(self) -> str:
        hooks = self.waldur.call("GET", "/hooks-web/")
        url = next(
            h["destination_url"]
            for h in hooks
            if h["destination_url"].startswith(self.registry.base_url)
        )
        event = {
            "created": "2026-12-06T06:00:00+00:00",
            "message": "dup",
            "event_type": "project_creation_succeeded",
            "context": {
                "project_uuid": self.state["project"],
                "customer_uuid": self.state["customer"],
            },
        }
        answers = [httpx.post(url, json=event, timeout=10).status_code for _ in range(2)]
        expect(answers == [202, 202], f"answers {answers}")
        projects = self.registry.call(
            "GET", "/api/v1/projects/", params={"tenant": self.state["tenant"]}
        )
        items = projects["results"] if isinstance(projects, dict) else projects
        mirrored = [
            p
            for p in items
            if (p["waldur_project_uuid"] or "").replace("-", "")
            == self.state["project"].replace("-", "")
        ]
        expect(len(mirrored) == 1, f"{len(mirrored)} projects for one Waldur project")
        return "202 twice, one project"

    def timeout_retried(self) -> str:
        calls = len(self.fake.requests_to("/api/customers/"))
        self.fake.slow_seconds = 3.0  # past WALDUR_TIMEOUT=2
        self.fake.fault, self.fake.fault_count = "timeout", 1
        try:
            done = self.registry.manage("waldur_sync")  # exits 0: the retry succeeded
        finally:
            self.fake.fault = None
        tries = len(self.fake.requests_to("/api/customers/")) - calls
        expect(tries >= 2, f"the listing was asked {tries} time(s): no retry")
        return f"first call timed out, retried; {done.stdout.strip().splitlines()[-1]}"

    def billing_failure(self) -> str:
        gateway = httpx.Client(base_url=self.registry.base_url, timeout=30.0)
        gateway.post(
            f"/api/v1/agents/{self.state['agent']}/invoke",
            headers={"X-API-Key": self.state["api_key"]},
            json={"input": "one more"},
        )
        wait_for(
            "the sixth record",
            lambda: (
                self.registry.call(
                    "GET", "/api/v1/usage/records/", params={"subscription": self.state["access"]}
                )["count"]
                >= 6
            ),
        )
        self.registry.manage("aggregate_usage")
        self.registry.manage("close_billing_cycle")
        self.fake.fault, self.fake.fault_count = "500", None
        try:
            failed = self.registry.manage("waldur_push_usage", ok=False)
        finally:
            self.fake.fault = None
        expect(failed.returncode != 0, "the push did not report its failure")
        snapshot = self.registry.first("/api/v1/usage/snapshots/", tenant=self.state["tenant"])
        expect(
            snapshot["synced_to_waldur"] is False and snapshot["sync_error"],
            f"no error recorded: {snapshot}",
        )
        expect(snapshot["sync_attempts"] >= 1, "attempts not counted")
        self.registry.manage("waldur_push_usage")  # the retry (the hourly job does the same)
        snapshot = self.registry.first("/api/v1/usage/snapshots/", tenant=self.state["tenant"])
        expect(snapshot["synced_to_waldur"] is True, f"retry did not sync: {snapshot}")
        return f"error recorded ({snapshot['sync_attempts']} attempts), retry synced"

    def suspend(self) -> str:
        self.waldur.call("PATCH", f"/customers/{self.state['customer']}/", json={"blocked": True})
        wait_for("the suspension", lambda: (self.tenant() or {}).get("is_active") is False)
        gateway = httpx.Client(base_url=self.registry.base_url, timeout=30.0)

        def refused() -> bool:
            answer = gateway.post(
                f"/api/v1/agents/{self.state['agent']}/invoke",
                headers={"X-API-Key": self.state["api_key"]},
                json={"input": "after suspension"},
            )
            return answer.status_code == 403

        wait_for("the key to stop", refused, timeout=5)
        return "tenant suspended, key refused (403)"

    def run(self) -> int:
        self.section("Pre-requisites")
        self.line("Waldur instance accessible", self.waldur_reachable)
        self.line("Webhook secret configured (hooks registered)", self.hooks_registered)
        self.line("Agent Registry deployed with Waldur settings", self.registry_ready)
        self.section("Tenant lifecycle")
        self.line("Create Waldur Customer → AgentTenant created via webhook", self.customer_create)
        self.line("Update Waldur Customer → AgentTenant updated", self.customer_update)
        self.section("Project lifecycle")
        self.line("Create Waldur Project → AgentProject created via webhook", self.project_create)
        self.line("Archive Waldur Project → AgentProject deactivated", self.project_archive)
        self.section("Agent publishing")
        self.line("Register agent in Agent Registry", self.agent_register)
        self.line("Deploy agent (DRAFT → DEPLOYED)", self.agent_deploy)
        self.line("Publish agent to Waldur (DEPLOYED → LISTED)", self.agent_publish)
        self.line("Offering: name and description", self.offering_texts)
        self.line("Offering: category mapping", self.offering_category)
        self.line("Offering: plans and pricing", self.offering_plans)
        self.line("Activate agent (LISTED → ACTIVE)", self.agent_activate)
        self.section("Subscription flow")
        self.line("Customer orders agent in Waldur", self.order_create)
        self.line("Order webhook → order processed, done", self.order_done)
        self.line("AgentAccess created with API key", self.access_created)
        self.line("API key returned to Waldur (for customer display)", self.key_handed_back)
        self.section("Usage & billing")
        self.line("Make API calls with generated key", self.calls)
        self.line("UsageRecord created for each call", self.usage_records)
        self.line("Run daily aggregation task", self.aggregate)
        self.line("DailyUsageSummary populated", self.daily)
        self.line("Run monthly billing sync", self.billing_sync)
        self.line("TenantQuotaSnapshot synced to Waldur", self.snapshot_synced)
        self.section("Error handling")
        self.line("Invalid webhook secret → 403 response", self.wrong_secret)
        self.line("Duplicate webhook → idempotent handling", self.duplicate_hook)
        self.line("Waldur API timeout → retry logic", self.timeout_retried, fake_only=True)
        self.line(
            "Billing sync failure → error recorded, retry queued",
            self.billing_failure,
            fake_only=True,
        )
        self.section("Tenant lifecycle (end)")
        self.line("Suspend Waldur Customer → AgentTenant suspended, keys stop", self.suspend)
        failed = [r for r in self.results if r[0] == "FAIL"]
        skipped = [r for r in self.results if r[0] == "skip"]
        print(
            f"\nchecklist: {len(self.results) - len(failed) - len(skipped)} ok, "
            f"{len(failed)} failed, {len(skipped)} skipped"
        )
        return 1 if failed else 0


def main() -> int:
    real = bool(os.environ.get("WALDUR_API_URL"))
    if real and not all(
        os.environ.get(k) for k in ("WALDUR_API_TOKEN", "REGISTRY_URL", "REGISTRY_TOKEN")
    ):
        print(
            "against a real Waldur set WALDUR_API_TOKEN, REGISTRY_URL and REGISTRY_TOKEN too "
            "(see this file's docstring)",
            file=sys.stderr,
        )
        return 2
    with real_world() if real else fake_world() as (waldur, registry, fake):
        return Walk(waldur, registry, fake).run()


if __name__ == "__main__":
    sys.exit(main())
