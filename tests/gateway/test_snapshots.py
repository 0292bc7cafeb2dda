"""The key lookup's query budget: one query cold, none warm."""

from __future__ import annotations

import asyncio

import pytest

from agent_registry.gateway import pipeline
from agent_registry.gateway.snapshots import SnapshotCache, load_snapshot
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cold_lookup_is_one_query(django_assert_num_queries):
    issued = factories.make_subscription()

    with django_assert_num_queries(1):
        snapshot = load_snapshot(issued.access.key_prefix)

    assert snapshot.access_id == str(issued.access.pk)
    assert snapshot.agent_id == issued.access.agent_instance.agent_id


def test_a_warm_lookup_makes_no_query(monkeypatch):
    issued = factories.make_subscription()
    cache = SnapshotCache()
    loads = []
    real_load = cache._load

    async def counting_load(prefix):
        loads.append(prefix)
        return await real_load(prefix)

    monkeypatch.setattr(cache, "_load", counting_load)
    monkeypatch.setattr(pipeline, "snapshots", cache)

    async def authenticate_many():
        for _ in range(50):
            await pipeline.authenticate(issued.api_key)

    asyncio.run(authenticate_many())

    assert loads == [issued.access.key_prefix]


def test_unknown_keys_are_remembered_so_a_flood_does_not_reach_the_database(monkeypatch):
    from agent_registry.core import keys
    from agent_registry.gateway.errors import InvalidApiKey

    cache = SnapshotCache()
    loads = []

    async def counting_load(prefix):
        loads.append(prefix)

    monkeypatch.setattr(cache, "_load", counting_load)
    monkeypatch.setattr(pipeline, "snapshots", cache)
    stranger = keys.issue_key().plaintext

    async def try_many():
        for _ in range(20):
            with pytest.raises(InvalidApiKey):
                await pipeline.authenticate(stranger)

    asyncio.run(try_many())

    assert len(loads) == 1


@pytest.mark.real_services
def test_a_second_process_gets_the_snapshot_from_redis_without_a_query(monkeypatch):
    issued = factories.make_subscription()
    first, second = SnapshotCache(), SnapshotCache()  # two processes' caches
    loads = []
    real_load = second._load

    async def counting_load(prefix):
        loads.append(prefix)
        return await real_load(prefix)

    monkeypatch.setattr(second, "_load", counting_load)
    prefix = issued.access.key_prefix

    async def both():
        loaded = await first.get(prefix)
        shared = await second.get(prefix)
        return loaded, shared

    loaded, shared = asyncio.run(both())

    assert loads == []
    assert shared.access_id == loaded.access_id
    assert shared.pricing == loaded.pricing
    assert shared.target == loaded.target


@pytest.mark.real_services
def test_a_change_to_the_subscription_drops_the_shared_copy():
    from agent_registry.access.services import access_key_rotate

    issued = factories.make_subscription()
    prefix = issued.access.key_prefix
    asyncio.run(SnapshotCache().get(prefix))

    rotated = access_key_rotate(access=issued.access, grace_seconds=60)

    fresh = asyncio.run(SnapshotCache().get(prefix))
    assert fresh.key_prefix == rotated.access.key_prefix  # not the pre-rotation copy


def test_an_agent_the_key_is_not_for_is_refused_without_a_reload_or_query(
    monkeypatch, django_assert_num_queries
):
    """Not 403 for an existing agent and 404 for a missing one: no probing, no lookup."""
    from dataclasses import replace

    from agent_registry.gateway.errors import AgentNotFound

    issued = factories.make_subscription()
    factories.make_agent(agent_id="someone-elses")
    stale = replace(load_snapshot(issued.access.key_prefix), loaded_at=0.0)
    cache = SnapshotCache()
    loads = []

    async def counting_load(prefix):
        loads.append(prefix)
        raise AssertionError("no reload expected")

    monkeypatch.setattr(cache, "_load", counting_load)
    monkeypatch.setattr(pipeline, "snapshots", cache)

    for agent_id in ("someone-elses", "no-such-agent"):
        with django_assert_num_queries(0), pytest.raises(AgentNotFound) as refused:
            asyncio.run(pipeline.check_usable(stale, agent_id, issued.access.key_prefix))
        assert refused.value.message == f"No agent '{agent_id}'."
    assert loads == []
