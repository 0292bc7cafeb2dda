"""A subscription's key: shown once, rotated with grace, revoked or suspended at once.

Every key check here is the gateway's own (gateway/pipeline.py ``authenticate`` and
``check_usable``): cold reads the subscription from the database, warm answers from
the cached ``KeySnapshot`` without a query, as a busy gateway process does.
"""

from __future__ import annotations

import asyncio
import time
import types
from datetime import timedelta

import pytest
from django.utils import timezone

from agent_registry.access.models import AccessStatus, AgentAccess
from agent_registry.access.services import access_key_rotate, access_revoke
from agent_registry.agents.models import AgentState
from agent_registry.agents.services import agent_transition
from agent_registry.core.errors import Conflict
from agent_registry.gateway import pipeline
from agent_registry.gateway.errors import (
    AgentNotFound,
    GatewayForbidden,
    InvalidApiKey,
    PaymentRequired,
)
from agent_registry.gateway.snapshots import KeySnapshot, snapshots
from agent_registry.tenants.services import tenant_reactivate, tenant_suspend
from tests import factories

# The gateway reads snapshots in a worker thread, which sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def database_reads(monkeypatch):
    """The key prefixes the gateway loaded from the database during the test."""
    snapshots.clear()
    loads: list[str] = []
    real_load = snapshots._load

    async def counting_load(prefix):
        loads.append(prefix)
        return await real_load(prefix)

    monkeypatch.setattr(snapshots, "_load", counting_load)
    yield loads
    snapshots.clear()


def authenticated(api_key: str, *, warm: bool = False) -> KeySnapshot:
    """The gateway's authentication of ``api_key``: from the database (cold) or from
    whatever it has cached (warm)."""
    snapshot, _ = asyncio.run(pipeline.authenticate(api_key, max_age=None if warm else 0.0))
    return snapshot


def usable(api_key: str, agent_id: str) -> KeySnapshot:
    """Authentication (cold) and then the gateway's checks that the key may call the agent."""

    async def check() -> KeySnapshot:
        snapshot, prefix = await pipeline.authenticate(api_key, max_age=0.0)
        return await pipeline.check_usable(snapshot, agent_id, prefix)

    return asyncio.run(check())


def agent_of(issued) -> str:
    return issued.access.agent_instance.agent_id


def seconds_later(monkeypatch, seconds: float) -> None:
    """The gateway's wall clock (key grace) moves on; its cache ages stay as they are."""
    clock = types.SimpleNamespace(
        time=lambda: time.time() + seconds,
        monotonic=time.monotonic,
        perf_counter=time.perf_counter,
    )
    monkeypatch.setattr(pipeline, "time", clock)


def test_the_issued_key_authenticates_its_subscription(database_reads):
    issued = factories.make_subscription()

    cold = authenticated(issued.api_key)
    warm = authenticated(issued.api_key, warm=True)

    assert cold.access_id == str(issued.access.pk)
    assert warm == cold
    assert database_reads == [issued.access.key_prefix]  # the warm check made no query


def test_the_database_keeps_only_the_prefix_and_hash():
    issued = factories.make_subscription()
    row = AgentAccess.objects.values().get(pk=issued.access.pk)

    assert issued.api_key not in str(row)
    assert row["key_prefix"] == issued.api_key[:16]


def test_the_key_is_returned_once_on_create_and_never_on_read(project, operator_client):
    agent = factories.make_agent()
    plan = factories.make_plan(agent)

    created = operator_client.post(
        "/api/v1/subscriptions/",
        {"agent": agent.agent_id, "plan": str(plan.id), "project": str(project.id)},
        format="json",
    )
    api_key = created.json()["api_key"]
    subscription_id = created.json()["id"]
    detail = operator_client.get(f"/api/v1/subscriptions/{subscription_id}/")
    listing = operator_client.get("/api/v1/subscriptions/")

    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"
    assert authenticated(api_key).access_id == str(AgentAccess.objects.get().pk)
    for response in (detail, listing):
        assert response.status_code == 200
        assert api_key not in response.content.decode()
        assert "api_key" not in response.content.decode()
        assert AgentAccess.objects.get().key_hash not in response.content.decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # checksum typo
        lambda key: key.replace("agr_", "agx_"),
        lambda key: "",
    ],
)
def test_a_tampered_key_is_refused(tamper):
    issued = factories.make_subscription()

    with pytest.raises(InvalidApiKey):
        authenticated(tamper(issued.api_key))


def test_a_well_formed_key_with_the_right_prefix_but_a_wrong_secret_is_refused():
    from agent_registry.core import keys

    issued = factories.make_subscription()
    forged_head = issued.access.key_prefix + "x" * keys.SECRET_LENGTH
    forged = forged_head + keys._checksum(forged_head)
    assert keys.parse_key(forged) is not None
    authenticated(issued.api_key)  # the real key's snapshot is cached

    for warm in (False, True):
        with pytest.raises(InvalidApiKey):
            authenticated(forged, warm=warm)


def test_an_unknown_key_is_refused_like_a_wrong_secret():
    from agent_registry.core import keys

    with pytest.raises(InvalidApiKey) as unknown:
        authenticated(keys.issue_key().plaintext)
    assert unknown.value.code == "invalid_api_key"
    assert unknown.value.status == 401


def test_a_bad_checksum_is_refused_without_touching_the_database(
    django_assert_num_queries, database_reads, monkeypatch
):
    issued = factories.make_subscription()
    typo = issued.api_key[:-1] + ("A" if issued.api_key[-1] != "A" else "B")

    async def no_cache_lookup(prefix, **kwargs):
        raise AssertionError("a typo reached the snapshot cache")

    monkeypatch.setattr(snapshots, "get", no_cache_lookup)

    with django_assert_num_queries(0), pytest.raises(InvalidApiKey):
        authenticated(typo)
    assert database_reads == []


def test_rotation_returns_a_new_key_and_the_old_one_works_during_the_grace_period(
    database_reads,
):
    issued = factories.make_subscription()

    rotated = access_key_rotate(access=issued.access, grace_seconds=3600)

    assert rotated.api_key != issued.api_key
    assert authenticated(rotated.api_key).access_id == str(issued.access.pk)
    assert authenticated(issued.api_key).access_id == str(issued.access.pk)
    reads = len(database_reads)
    assert authenticated(rotated.api_key, warm=True).access_id == str(issued.access.pk)
    assert authenticated(issued.api_key, warm=True).access_id == str(issued.access.pk)
    assert len(database_reads) == reads  # one cached snapshot answers for both keys
    assert rotated.access.previous_key_prefix == issued.access.key_prefix


def test_the_old_key_stops_when_the_grace_period_ends(monkeypatch, database_reads):
    issued = factories.make_subscription()
    rotated = access_key_rotate(access=issued.access, grace_seconds=3600)
    assert authenticated(issued.api_key, warm=True).access_id == str(issued.access.pk)

    # warm: the cached snapshot applies the grace with the gateway's clock
    seconds_later(monkeypatch, 3601)
    reads = len(database_reads)
    with pytest.raises(InvalidApiKey):
        authenticated(issued.api_key, warm=True)
    assert authenticated(rotated.api_key, warm=True).access_id == str(issued.access.pk)
    assert len(database_reads) == reads
    monkeypatch.setattr(pipeline, "time", time)

    # cold: the stored expiry is in the past
    AgentAccess.objects.filter(pk=issued.access.pk).update(
        previous_key_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(InvalidApiKey):
        authenticated(issued.api_key)
    assert authenticated(rotated.api_key).access_id == str(issued.access.pk)


def test_rotating_again_ends_the_first_keys_grace_at_once():
    issued = factories.make_subscription()
    second = access_key_rotate(access=issued.access, grace_seconds=3600)
    authenticated(issued.api_key, warm=True)  # a snapshot with the first key in grace
    third = access_key_rotate(access=second.access, grace_seconds=3600)

    for warm in (False, True):
        with pytest.raises(InvalidApiKey):
            authenticated(issued.api_key, warm=warm)
        assert authenticated(second.api_key, warm=warm).access_id == str(issued.access.pk)
        assert authenticated(third.api_key, warm=warm).access_id == str(issued.access.pk)


def test_rotation_with_zero_grace_stops_the_old_key_now():
    issued = factories.make_subscription()
    authenticated(issued.api_key, warm=True)  # cached before the rotation

    access_key_rotate(access=issued.access, grace_seconds=0)

    for warm in (False, True):
        with pytest.raises(InvalidApiKey):
            authenticated(issued.api_key, warm=warm)


def test_the_default_grace_period_comes_from_settings(settings):
    settings.API_KEY_ROTATION_GRACE_SECONDS = 120
    issued = factories.make_subscription()
    before = timezone.now()

    rotated = access_key_rotate(access=issued.access)

    expires = rotated.access.previous_key_expires_at
    assert timedelta(seconds=119) <= expires - before <= timedelta(seconds=121)


def test_revocation_stops_the_key_and_any_key_in_grace_immediately():
    issued = factories.make_subscription()
    rotated = access_key_rotate(access=issued.access, grace_seconds=3600)

    access_revoke(access=rotated.access, reason="leaked")

    for key in (issued.api_key, rotated.api_key):
        with pytest.raises(InvalidApiKey):
            usable(key, agent_of(issued))
    access = AgentAccess.objects.get(pk=issued.access.pk)
    assert access.status == AccessStatus.REVOKED
    assert access.revocation_reason == "leaked"
    assert access.revoked_at is not None


def test_revoking_twice_is_harmless_and_keeps_the_first_reason():
    issued = factories.make_subscription()
    access_revoke(access=issued.access, reason="first")

    access = access_revoke(access=issued.access, reason="second")

    assert access.revocation_reason == "first"


def test_a_revoked_key_cannot_be_rotated_back_to_life():
    issued = factories.make_subscription()
    access_revoke(access=issued.access, reason="done")

    with pytest.raises(Conflict):
        access_key_rotate(access=issued.access)


def test_tenant_suspension_stops_every_key_of_the_tenant_and_reactivation_restores_them():
    project = factories.ProjectFactory()
    agent = factories.make_agent()
    first = factories.make_subscription(project=project, agent=agent)
    second = factories.make_subscription(project=project, agent=agent)

    tenant_suspend(tenant=project.tenant, reason="unpaid")

    for issued in (first, second):
        with pytest.raises(GatewayForbidden, match="suspended"):
            usable(issued.api_key, agent.agent_id)

    tenant_reactivate(tenant=project.tenant)
    for issued in (first, second):
        usable(issued.api_key, agent.agent_id)


def test_a_key_is_bound_to_its_agent():
    issued = factories.make_subscription()
    other = factories.make_agent()

    # Answered like an agent that doesn't exist, so a key cannot probe agent ids.
    with pytest.raises(AgentNotFound, match=other.agent_id):
        usable(issued.api_key, other.agent_id)


def test_a_subscription_pending_payment_is_not_usable_until_paid():
    issued = factories.make_subscription()
    AgentAccess.objects.filter(pk=issued.access.pk).update(status=AccessStatus.PENDING_PAYMENT)

    # API.md: 402 payment_required, not 403 (paying makes the key work)
    with pytest.raises(PaymentRequired, match="first payment"):
        usable(issued.api_key, agent_of(issued))


def test_rotate_over_the_api_returns_the_new_key_once(operator_client):
    issued = factories.make_subscription()

    response = operator_client.post(f"/api/v1/subscriptions/{issued.access.id}/rotate/")

    assert response.status_code == 200
    new_key = response.json()["api_key"]
    assert authenticated(new_key).access_id == str(issued.access.pk)
    assert authenticated(issued.api_key).access_id == str(issued.access.pk)  # still in grace
    assert response.json()["previous_key_prefix"] == issued.access.key_prefix


def test_revoke_over_the_api(operator_client):
    issued = factories.make_subscription()

    response = operator_client.post(
        f"/api/v1/subscriptions/{issued.access.id}/revoke/", {"reason": "leak"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    with pytest.raises(InvalidApiKey):
        usable(issued.api_key, agent_of(issued))


def test_subscribing_needs_a_listed_or_active_agent(operator_client, project):
    agent = factories.make_agent(state=AgentState.ACTIVE)
    plan = factories.make_plan(agent)
    agent_transition(agent=agent, to_state=AgentState.PAUSED)

    response = operator_client.post(
        "/api/v1/subscriptions/",
        {"agent": agent.agent_id, "plan": str(plan.id), "project": str(project.id)},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "agent_unavailable"
    assert not AgentAccess.objects.exists()
