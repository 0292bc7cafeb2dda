"""The gateway's Redis from Django's synchronous side: one pooled client per process."""

from __future__ import annotations

import threading

import pytest

from agent_registry.gateway import sync_redis

pytestmark = pytest.mark.real_services


def test_callers_share_one_client_and_its_connections():
    client = sync_redis.shared()
    client.ping()
    opened = client.connection_pool._created_connections

    for _ in range(20):  # as twenty API requests one after another
        assert sync_redis.shared() is client
        sync_redis.shared().ping()

    assert client.connection_pool._created_connections == opened  # no new connection


def test_threads_get_the_same_client():
    seen = []

    def grab() -> None:
        seen.append(sync_redis.shared(timeout=1.5))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(client) for client in seen}) == 1


def test_another_redis_url_gets_its_own_client(settings):
    default = sync_redis.shared()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # another server: a client of its own

    assert sync_redis.shared() is not default
