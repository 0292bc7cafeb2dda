"""Waldur marketplace orders → subscriptions and keys, through the real adapter, the real
order pass and command against the fake Waldur, and the gateway's own key checks."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import connection, connections
from prometheus_client import REGISTRY

from agent_registry.access.models import AccessStatus, AgentAccess, BillingChannelName
from agent_registry.agents.models import AgentInstance, AgentPlan, AgentState
from agent_registry.agents.services import agent_transition
from agent_registry.core import keys as keys_module
from agent_registry.gateway import pipeline
from agent_registry.gateway.errors import GatewayForbidden, InvalidApiKey
from agent_registry.gateway.snapshots import snapshots
from agent_registry.waldur import orders as orders_module
from agent_registry.waldur.client import client_from_settings
from agent_registry.waldur.models import OrderOutcome, WaldurOrder
from agent_registry.waldur.orders import STEPS, OrdersResult, orders_process
from tests.factories import make_agent, make_plan
from tests.fakes.waldur import PROVIDER_UUID, FakeWaldur

pytestmark = pytest.mark.django_db(transaction=True)

KEY_PATHS = ("/report_created/", "/set_key/")


@dataclass
class World:
    fake: FakeWaldur
    agent: AgentInstance
    plan: AgentPlan
    other_plan: AgentPlan
    customer: str
    project: str
    offering: str

    def order(self, **kw) -> str:
        kw.setdefault("project_uuid", self.project)
        kw.setdefault("plan", str(self.plan.pk))
        return self.fake.add_order(self.offering, **kw)

    def resource_of(self, order_uuid: str) -> str:
        return self.fake.orders[order_uuid]["marketplace_resource_uuid"]

    def state_of(self, order_uuid: str) -> str:
        return self.fake.orders[order_uuid]["state"]


@pytest.fixture
def world(waldur, settings) -> World:
    settings.WALDUR_PROVIDER_CUSTOMER_UUID = PROVIDER_UUID
    agent = make_agent(agent_id="support-bot")
    plan = make_plan(agent, name="Basic", monthly_quota=1000, rate_limit_per_second=5)
    other = make_plan(agent, name="Pro", monthly_quota=50_000, rate_limit_per_second=20)
    customer = waldur.add_customer("Acme", abbreviation="acme")
    project = waldur.add_project(customer, "Prod")
    offering = waldur.add_offering(agent.agent_id, plans=[str(plan.pk), str(other.pk)])
    snapshots.clear()
    yield World(waldur, agent, plan, other, customer, project, offering)
    snapshots.clear()


def run_pass() -> OrdersResult:
    with client_from_settings() as client:
        return orders_process(client=client)


def usable(api_key: str, agent_id: str = "support-bot") -> None:
    """The gateway's own key checks (tests/access/test_keys_lifecycle.py), read cold."""

    async def check() -> None:
        snapshot, prefix = await pipeline.authenticate(api_key, max_age=0.0)
        await pipeline.check_usable(snapshot, agent_id, prefix)

    asyncio.run(check())


def reported_keys(fake: FakeWaldur) -> list[str]:
    """Every key value Waldur received, in order."""
    return [r.json["api_key"] for r in fake.requests if r.path.endswith(KEY_PATHS)]


def orders_metric(order_type: str, outcome: str) -> float:
    labels = {"type": order_type, "outcome": outcome}
    return REGISTRY.get_sample_value("agent_registry_waldur_orders_total", labels) or 0.0


# --- Create -----------------------------------------------------------------------------


def test_an_order_becomes_one_active_waldur_billed_subscription_with_a_working_key(world):
    before = orders_metric("Create", "done")
    order = world.order()

    result = run_pass()

    assert result.ok, result.errors
    assert world.state_of(order) == "done"
    resource = world.fake.resources[world.resource_of(order)]
    access = AgentAccess.objects.get()
    assert access.status == AccessStatus.ACTIVE
    assert access.billing_channel == BillingChannelName.WALDUR
    assert access.waldur_order_uuid == UUID(order)
    assert access.waldur_resource_uuid == UUID(resource["uuid"])
    assert access.plan == world.plan
    assert access.project.waldur_project_uuid == UUID(world.project)
    assert access.waldur_user_email == "consumer@example.org"
    # Waldur knows the subscription and where to call it; the key it holds works.
    assert resource["state"] == "OK"
    assert resource["backend_id"] == str(access.pk)
    assert world.fake.orders[order]["backend_id"] == str(access.pk)
    assert [e["url"] for e in resource["endpoints"]] == [
        "https://registry.example.org/api/v1/agents/support-bot/invoke/",
        "https://registry.example.org/v1",
    ]
    key = world.fake.key_for(resource["uuid"])
    assert key is not None
    usable(key)
    assert (
        world.fake.api_keys[str(WaldurOrder.objects.get().key_uuid).replace("-", "")]["client_id"]
        == f"agent-registry-{access.pk}"
    )
    row = WaldurOrder.objects.get()
    assert (row.outcome, row.step, row.waldur_state, row.access) == (
        OrderOutcome.DONE,
        "done",
        "done",
        access,
    )
    assert orders_metric("Create", "done") == before + 1


def test_the_subscription_does_not_work_before_its_key_is_handed_over(world, monkeypatch):
    seen: list[str] = []

    def check_before_hand_over(name: str) -> None:
        if name == "subscribe":
            access = AgentAccess.objects.get()
            seen.append(access.status)

    monkeypatch.setattr(orders_module, "_step_done", check_before_hand_over)
    world.order()
    run_pass()
    assert seen == [AccessStatus.PROVISIONING]


def test_an_executing_order_is_not_approved_again(world):
    order = world.order(state="executing")
    assert run_pass().ok
    assert world.state_of(order) == "done"
    assert not world.fake.requests_to("/approve_by_provider/")


# --- Rejections ---------------------------------------------------------------------------


def _unknown_plan(world: World) -> dict:
    world.fake.seeded_offerings[world.offering]["plans"].append(
        world.fake._seeded_plan(world.offering, str(uuid4()))
    )
    return {"plan": world.fake.seeded_offerings[world.offering]["plans"][-1]["backend_id"]}


def _suspended_tenant(world: World) -> dict:
    world.fake.customers[world.customer]["blocked"] = True
    return {}


def _agent_paused(world: World) -> dict:
    agent_transition(agent=world.agent, to_state=AgentState.PAUSED, reason="test")
    return {}


def _agent_deleted(world: World) -> dict:
    world.agent.soft_delete()
    return {}


def _project_gone(world: World) -> dict:
    gone = world.fake.add_project(world.customer, "Old")
    return {"project_uuid": gone, "_then_delete": gone}


def _already_subscribed(world: World) -> dict:
    first = world.order()
    assert run_pass().ok
    assert world.state_of(first) == "done"
    return {}


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (_unknown_plan, "Unknown plan"),
        (_suspended_tenant, "organisation is suspended"),
        (_agent_paused, "agent is paused"),
        (_agent_deleted, "agent no longer exists"),
        (_project_gone, "Unknown or archived project"),
        (_already_subscribed, "already has a subscription"),
    ],
)
def test_orders_the_registry_cannot_fulfil_are_rejected_with_the_reason(world, arrange, reason):
    kw = arrange(world)
    subscriptions_before = AgentAccess.objects.count()
    gone = kw.pop("_then_delete", None)
    order = world.order(**kw)
    if gone:
        del world.fake.projects[gone]
    rejected_before = orders_metric("Create", "rejected")

    result = run_pass()

    assert result.ok, result.errors  # rejecting is the pass doing its job
    assert world.state_of(order) == "rejected"
    assert reason in world.fake.orders[order]["provider_rejection_comment"]
    assert AgentAccess.objects.count() == subscriptions_before
    assert not world.fake.requests_to(f"/{order}/approve_by_provider/")
    row = WaldurOrder.objects.get(order_uuid=UUID(order))
    assert row.outcome == OrderOutcome.REJECTED
    assert reason in row.error
    assert orders_metric("Create", "rejected") == rejected_before + 1


# --- Update, Terminate, pause and restore ---------------------------------------------------


def created(world: World) -> tuple[str, AgentAccess, str]:
    order = world.order()
    assert run_pass().ok
    resource = world.resource_of(order)
    return (
        resource,
        AgentAccess.objects.get(waldur_order_uuid=UUID(order)),
        world.fake.key_for(resource),
    )


def test_an_update_changes_the_plan_and_its_limits_at_once(world):
    resource, access, key = created(world)
    order = world.order(type_="Update", resource_uuid=resource, plan=str(world.other_plan.pk))

    assert run_pass().ok

    access.refresh_from_db()
    assert access.plan == world.other_plan
    assert (access.quota_limit, access.rate_limit_per_second) == (50_000, 20)
    assert world.state_of(order) == "done"
    snapshot, _ = asyncio.run(pipeline.authenticate(key, max_age=0.0))
    assert (snapshot.quota_limit, snapshot.rate_limit_per_second) == (50_000, 20)
    usable(key)


def test_an_update_to_an_unknown_plan_is_rejected(world):
    resource, access, _ = created(world)
    stranger = _unknown_plan(world)["plan"]
    order = world.order(type_="Update", resource_uuid=resource, plan=stranger)
    assert run_pass().ok
    assert world.state_of(order) == "rejected"
    access.refresh_from_db()
    assert access.plan == world.plan


def test_a_termination_revokes_the_key(world):
    resource, access, key = created(world)
    usable(key)
    order = world.order(type_="Terminate", resource_uuid=resource, plan=None)

    assert run_pass().ok

    access.refresh_from_db()
    assert access.status == AccessStatus.REVOKED
    assert world.state_of(order) == "done"
    assert world.fake.resources[resource]["state"] == "Terminated"
    with pytest.raises(InvalidApiKey):
        usable(key)


def test_a_paused_resource_suspends_the_key_and_unpausing_restores_it(world):
    resource, access, key = created(world)
    world.fake.resources[resource]["paused"] = True

    assert run_pass().counts.get("resources_suspended") == 1
    access.refresh_from_db()
    assert access.status == AccessStatus.SUSPENDED
    with pytest.raises(GatewayForbidden):
        usable(key)

    world.fake.resources[resource]["paused"] = False
    assert run_pass().counts.get("resources_restored") == 1
    access.refresh_from_db()
    assert access.status == AccessStatus.ACTIVE
    usable(key)


def test_a_restore_order_restores_a_suspended_subscription(world):
    resource, access, key = created(world)
    world.fake.resources[resource]["paused"] = True
    run_pass()
    world.fake.resources[resource]["paused"] = False  # what Waldur does on a restore
    order = world.order(type_="Restore", resource_uuid=resource, plan=None)
    with client_from_settings() as client:  # the order alone, before any resource pass
        result = orders_process(client=client, offering_uuid=UUID(world.offering))
    assert result.ok, result.errors
    assert world.state_of(order) == "done"
    access.refresh_from_db()
    assert access.status == AccessStatus.ACTIVE
    usable(key)


def test_a_paused_resource_hook_suspends_at_once(world):
    from rest_framework.test import APIClient

    from tests.waldur.conftest import SECRET

    resource, access, _key = created(world)
    world.fake.resources[resource]["paused"] = True
    body = {
        "created": "2026-12-06T08:00:00+00:00",
        "message": "paused",
        "event_type": "marketplace_resource_paused",
        # The hook's own fields are not trusted: only the uuid is used, to re-read.
        "context": {"resource_uuid": resource, "resource_paused": False},
    }
    response = APIClient().post(f"/api/v1/webhooks/waldur/{SECRET}/", body, format="json")
    assert response.status_code == 202
    access.refresh_from_db()
    assert access.status == AccessStatus.SUSPENDED


def test_an_order_hook_runs_the_pass_for_its_offering(world):
    from rest_framework.test import APIClient

    from tests.waldur.conftest import SECRET

    order = world.order()
    body = {
        "created": "2026-12-06T08:00:00+00:00",
        "message": "created",
        "event_type": "marketplace_order_created",
        "context": {"order_uuid": order, "offering_uuid": str(uuid4())},  # not trusted
    }
    response = APIClient().post(f"/api/v1/webhooks/waldur/{SECRET}/", body, format="json")
    assert response.status_code == 202
    assert world.state_of(order) == "done"
    assert AgentAccess.objects.get().status == AccessStatus.ACTIVE


# --- Idempotency ------------------------------------------------------------------------------


def test_an_order_processed_twice_has_one_effect(world):
    order = world.order()
    with client_from_settings() as client:
        stale = client.orders(provider_uuid=UUID(PROVIDER_UUID))[0]
        offering = client.provider_offering(stale.offering_uuid)
        first = orders_module.order_process(client=client, waldur=stale, offering=offering)
        again = orders_module.order_process(client=client, waldur=stale, offering=offering)
    assert (first, again) == ("done", "done")
    assert run_pass().ok  # and a later pass finds nothing to do
    assert AgentAccess.objects.count() == 1
    assert len(world.fake.requests_to("/approve_by_provider/")) == 1
    assert len(world.fake.requests_to("/report_created/")) == 1
    assert len(world.fake.requests_to("/set_state_done/")) == 1
    usable(world.fake.key_for(world.resource_of(order)))


def test_an_order_approved_since_it_was_listed_goes_on(world):
    order = world.order()
    with client_from_settings() as client:
        stale = client.orders(provider_uuid=UUID(PROVIDER_UUID))[0]
        offering = client.provider_offering(stale.offering_uuid)
        world.fake.orders[order]["state"] = "executing"  # another pass approved it meanwhile
        outcome = orders_module.order_process(client=client, waldur=stale, offering=offering)
    assert outcome == "done"
    assert world.state_of(order) == "done"
    usable(world.fake.key_for(world.resource_of(order)))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL concurrency")
def test_two_passes_at_once_work_on_an_order_one_at_a_time(world, monkeypatch):
    order = world.order()
    inside = threading.Event()
    release = threading.Event()

    def hold(name: str) -> None:
        if name == "subscribe" and threading.current_thread().name == "first":
            inside.set()  # the first pass holds the order, mid-way
            release.wait(10)

    monkeypatch.setattr(orders_module, "_step_done", hold)
    results: dict[str, object] = {}

    def work() -> None:
        try:
            results[threading.current_thread().name] = run_pass().counts
        except BaseException as exc:  # reported by the assertion below
            results[threading.current_thread().name] = repr(exc)
        finally:
            connections.close_all()

    with client_from_settings():  # the client library's first import is slow: not in the race
        pass
    first = threading.Thread(target=work, name="first")
    first.start()
    assert inside.wait(30), results
    second = threading.Thread(target=work, name="second")
    second.start()
    second.join(30)
    release.set()
    first.join(30)

    assert results == {"second": {"busy": 1}, "first": {"done": 1}}
    assert world.state_of(order) == "done"
    assert AgentAccess.objects.count() == 1
    assert len(world.fake.requests_to("/report_created/")) == 1
    usable(world.fake.key_for(world.resource_of(order)))


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_after", STEPS["Create"])
def test_a_crash_between_any_two_steps_ends_with_one_subscription_and_one_working_key(
    world, monkeypatch, crash_after
):
    order = world.order()

    def crash(name: str) -> None:
        if name == crash_after:
            raise Crash(name)

    monkeypatch.setattr(orders_module, "_step_done", crash)
    with pytest.raises(Crash):
        run_pass()
    monkeypatch.setattr(orders_module, "_step_done", lambda name: None)

    assert run_pass().ok

    assert world.state_of(order) == "done"
    access = AgentAccess.all_objects.get()
    assert access.status == AccessStatus.ACTIVE
    keys = reported_keys(world.fake)
    assert keys
    assert world.fake.key_for(world.resource_of(order)) == keys[-1]
    usable(keys[-1])  # exactly the last key handed over works
    for earlier in keys[:-1]:
        with pytest.raises(InvalidApiKey):
            usable(earlier)
    assert len(world.fake.api_keys) == 1  # one key in Waldur, never a second one
    row = WaldurOrder.objects.get()  # a crash after set_state_done: closed from Waldur's state
    assert (row.outcome, row.waldur_state, row.access) == (OrderOutcome.DONE, "done", access)


@pytest.mark.parametrize(
    ("order_type", "crash_after"),
    [(kind, step) for kind in ("Update", "Terminate") for step in STEPS[kind]],
)
def test_a_crash_in_an_update_or_termination_has_one_effect(
    world, monkeypatch, order_type, crash_after
):
    resource, access, key = created(world)
    plan = str(world.other_plan.pk) if order_type == "Update" else None
    order = world.order(type_=order_type, resource_uuid=resource, plan=plan)

    def crash(name: str) -> None:
        if name == crash_after:
            raise Crash(name)

    monkeypatch.setattr(orders_module, "_step_done", crash)
    with pytest.raises(Crash):
        run_pass()
    monkeypatch.setattr(orders_module, "_step_done", lambda name: None)
    assert run_pass().ok

    assert world.state_of(order) == "done"
    assert WaldurOrder.objects.get(order_uuid=UUID(order)).outcome == OrderOutcome.DONE
    access.refresh_from_db()
    if order_type == "Update":
        assert (access.status, access.plan) == (AccessStatus.ACTIVE, world.other_plan)
        usable(key)
    else:
        assert access.status == AccessStatus.REVOKED
        with pytest.raises(InvalidApiKey):
            usable(key)
    assert AgentAccess.all_objects.count() == 1


def test_a_key_issued_but_not_handed_over_never_works(world, monkeypatch):
    """A crash right after the subscription was made: the key it was made with is lost
    with the process, and must not work; the retry hands over a new one."""
    issued: list[str] = []
    real_create = orders_module.access_create

    def remember(**kw):
        result = real_create(**kw)
        issued.append(result.api_key)
        return result

    monkeypatch.setattr(orders_module, "access_create", remember)
    world.order()
    monkeypatch.setattr(
        orders_module,
        "_step_done",
        lambda name: (_ for _ in ()).throw(Crash()) if name == "subscribe" else None,
    )
    with pytest.raises(Crash):
        run_pass()
    with pytest.raises(GatewayForbidden):
        usable(issued[0])  # provisioning: refused

    monkeypatch.setattr(orders_module, "_step_done", lambda name: None)
    assert run_pass().ok
    with pytest.raises(InvalidApiKey):
        usable(issued[0])
    usable(reported_keys(world.fake)[-1])


# --- Faults ---------------------------------------------------------------------------------


def test_a_waldur_timeout_keeps_the_order_for_the_next_pass(world):
    order = world.order()
    world.fake.path_faults["/report_created/"] = "timeout"
    retry_before = orders_metric("Create", "retry")

    result = run_pass()

    assert not result.ok
    assert world.state_of(order) == "executing"
    row = WaldurOrder.objects.get()
    assert row.outcome == OrderOutcome.RETRY
    assert row.error.startswith("transient:")
    assert row.step == "subscribe"
    assert AgentAccess.objects.get().status == AccessStatus.PROVISIONING
    assert orders_metric("Create", "retry") == retry_before + 1

    del world.fake.path_faults["/report_created/"]
    assert run_pass().ok
    assert world.state_of(order) == "done"
    assert AgentAccess.objects.get().status == AccessStatus.ACTIVE
    usable(world.fake.key_for(world.resource_of(order)))
    assert WaldurOrder.objects.get().attempts == 2


def test_a_permanent_error_marks_the_order_erred_and_leaves_no_working_key(world):
    order = world.order()
    world.fake.path_faults["/set_endpoints/"] = "400"

    result = run_pass()

    assert not result.ok
    assert world.state_of(order) == "erred"
    assert "HTTP 400" in world.fake.orders[order]["error_message"]
    row = WaldurOrder.objects.get()
    assert row.outcome == OrderOutcome.ERRED
    assert "HTTP 400" in row.error
    access = AgentAccess.all_objects.get()
    assert access.status == AccessStatus.REVOKED
    with pytest.raises(InvalidApiKey):
        usable(world.fake.key_for(world.resource_of(order)))


def test_a_waldur_refusing_the_token_never_rejects_the_order(world):
    order = world.order()
    world.fake.path_faults["/approve_by_provider/"] = "403"
    assert not run_pass().ok
    assert world.state_of(order) == "pending-provider"
    assert WaldurOrder.objects.get().outcome == OrderOutcome.RETRY
    del world.fake.path_faults["/approve_by_provider/"]
    assert run_pass().ok
    assert world.state_of(order) == "done"


def test_orders_of_offerings_that_are_not_ours_are_left_alone(world):
    stranger = world.fake.add_offering("someone-elses", plans=[], customer_uuid=uuid4().hex)
    foreign = world.fake.add_order(stranger, project_uuid=world.project)
    unknown_agent = world.fake.add_offering("no-such-agent", plans=[])
    mine_but_unknown = world.fake.add_order(unknown_agent, project_uuid=world.project)
    assert run_pass().ok
    assert world.state_of(foreign) == "pending-provider"
    assert world.state_of(mine_but_unknown) == "pending-provider"
    assert WaldurOrder.objects.count() == 0


# --- Keys stay secret ---------------------------------------------------------------------------


def test_the_key_is_only_ever_in_the_hand_over(world, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    # Order A: a crash after the hand-over, so the retry re-issues it through set_key.
    first = world.order()
    monkeypatch.setattr(
        orders_module,
        "_step_done",
        lambda name: (_ for _ in ()).throw(Crash()) if name == "hand_over_key" else None,
    )
    with pytest.raises(Crash):
        run_pass()
    monkeypatch.setattr(orders_module, "_step_done", lambda name: None)
    assert run_pass().ok
    assert world.state_of(first) == "done"
    assert world.fake.requests_to("/set_key/")
    # Order B: Waldur refuses the hand-over with an answer that quotes the key back.
    other_project = world.fake.add_project(world.customer, "Staging")
    second = world.order(project_uuid=other_project)
    world.fake.path_faults["/report_created/"] = "echo400"
    assert not run_pass().ok
    assert world.state_of(second) == "erred"

    keys = reported_keys(world.fake)
    assert len(keys) == 3
    for key in keys:
        parsed = keys_module.parse_key(key)
        assert parsed is not None
        # Any start of the secret part (the prefix is public): a cut-short quote leaks too.
        secret = key[len(parsed.prefix) :][:8]
        for request in world.fake.requests:
            if not request.path.endswith(KEY_PATHS):
                assert secret not in request.body.decode(), request.path
            assert secret not in request.path
            assert secret not in json.dumps(request.query)
        assert secret not in caplog.text
        for entry in LogEntry.objects.all():
            assert secret not in json.dumps(entry.changes)
            assert secret not in str(entry)
        for row in WaldurOrder.objects.all():
            assert secret not in row.error
        assert secret not in world.fake.orders[second]["error_message"]
        assert secret not in json.dumps(world.fake.resources)  # endpoints, metadata
        for access in AgentAccess.all_objects.all():
            assert secret not in json.dumps(access.metadata)
    assert "HTTP 400 (answer not kept" in WaldurOrder.objects.get(order_uuid=UUID(second)).error


# --- The command ---------------------------------------------------------------------------------


def test_the_command_prints_progress_and_a_summary(world):
    order = world.order()
    out = io.StringIO()
    call_command("waldur_process_orders", stdout=out)
    text = out.getvalue()
    assert f"Create order {UUID(order)}: done" in text
    assert text.strip().splitlines()[-1] == "waldur_process_orders: done=1"


def test_the_command_fails_when_an_order_fails(world):
    world.order()
    world.fake.path_faults["/report_created/"] = "500"
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 error"):
        call_command("waldur_process_orders", stdout=io.StringIO(), stderr=err)
    assert "transient" in err.getvalue()


def test_the_command_refuses_without_the_integration_or_the_provider(settings, world):
    settings.WALDUR_PROVIDER_CUSTOMER_UUID = ""
    with pytest.raises(CommandError, match="WALDUR_PROVIDER_CUSTOMER_UUID"):
        call_command("waldur_process_orders", stdout=io.StringIO())
    settings.WALDUR_API_URL = ""
    with pytest.raises(CommandError, match="WALDUR_API_URL"):
        call_command("waldur_process_orders", stdout=io.StringIO())


# --- The admin -----------------------------------------------------------------------------------


def test_the_admin_shows_order_errors_and_runs_the_pass_again(world, admin_browser):
    from tests.admin_support import changelist_url, run_action

    order = world.order()
    world.fake.path_faults["/report_created/"] = "500"
    run_pass()
    row = WaldurOrder.objects.get()

    page = admin_browser.get(changelist_url(WaldurOrder) + "?outcome=retry")
    assert page.status_code == 200
    assert str(row.order_uuid) in page.content.decode()
    assert "transient: report the key" in page.content.decode()

    del world.fake.path_faults["/report_created/"]
    page = run_action(admin_browser, WaldurOrder, "process_again", [row])
    assert "1 offering(s) processed; 0 error(s)." in page.content.decode()
    assert world.state_of(order) == "done"
    row.refresh_from_db()
    assert row.outcome == OrderOutcome.DONE
