"""Suite-wide fixtures: clean caches, loopback-only network, real-service markers, callers."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests import factories, flush

# --- Network: tests may talk to this machine only ------------------------------

_real_connect = socket.socket.connect


def _loopback_only_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            is_local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_local = host in {"localhost"}
        if not is_local:
            raise OSError(f"tests may only connect to loopback, not {host!r}")
    return _real_connect(sock, address)


socket.socket.connect = _loopback_only_connect


# --- Parallel workers (pytest-xdist) ---------------------------------------------

# Redis's default `databases`: db numbers 0..15.
REDIS_DATABASES = 16


def worker_redis_url(url: str, worker: str) -> str:
    """REDIS_URL's db + the worker's index: gw0 → db N, gw1 → db N+1, and so on.

    Most keys carry random ids, but not all (an agent's id, a test's fixed names), and a
    test may assert that a key is absent or count what it finds: one worker's keys must
    never be another's to see."""
    parsed = urlparse(url)
    base = int(parsed.path.strip("/") or 0)
    db = base + int(worker.removeprefix("gw"))
    if db >= REDIS_DATABASES:
        raise pytest.UsageError(
            f"xdist worker {worker} would use Redis db {db} (REDIS_URL's db {base} + its "
            f"index), past Redis's {REDIS_DATABASES}: lower the db in REDIS_URL or use fewer "
            "workers (-n)."
        )
    return parsed._replace(path=f"/{db}").geturl()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """Before any worker starts: each of them must have a Redis db (checked again by each)."""
    if settings.REDIS_URL and specs:
        worker_redis_url(settings.REDIS_URL, f"gw{len(specs) - 1}")


def pytest_configure(config):
    """Under xdist, each worker gets the Redis db of its own before any test runs (the
    test database is pytest-django's: test_<name>_gw<index>). The environment too, so
    a subprocess a test starts (a gateway, a job) shares its worker's db."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not settings.REDIS_URL:
        return
    from django.core.cache import caches

    # Django's cache handler reads CACHES once, on first use: none may have happened yet.
    assert "settings" not in caches.__dict__, "a cache was used before the worker's Redis db"
    url = worker_redis_url(settings.REDIS_URL, worker)
    os.environ["REDIS_URL"] = url
    settings.REDIS_URL = url
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": url},
    }


# --- Real services ---------------------------------------------------------------


def real_services_available() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and bool(
        settings.REDIS_URL
    )


def pytest_collection_modifyitems(config, items):
    # Slow tests first (a stable sort keeps each module's tests together): xdist hands
    # tests out in this order, so a minute-long test starts at once instead of running
    # alone at the end of the suite.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if real_services_available():
        return
    if os.environ.get("REQUIRE_REAL_SERVICES") == "1":
        raise pytest.UsageError(
            "REQUIRE_REAL_SERVICES=1 but DATABASE_URL is not PostgreSQL or REDIS_URL is unset."
        )
    skip = pytest.mark.skip(reason="needs real PostgreSQL and Redis (run via `make test`)")
    for item in items:
        if "real_services" in item.keywords:
            item.add_marker(skip)


# --- Callers -----------------------------------------------------------------------


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def operator(db):
    return factories.UserFactory(username="operator", is_staff=True)


@pytest.fixture
def operator_client(operator) -> APIClient:
    return factories.token_client(operator)


@pytest.fixture
def superuser(db):
    return factories.UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_browser(client, superuser):
    """A browser logged in to the Django admin as a superuser."""
    client.force_login(superuser)
    return client


@pytest.fixture
def tenant(db):
    return factories.TenantFactory(slug="acme", name="Acme")


@pytest.fixture
def project(tenant):
    return factories.ProjectFactory(tenant=tenant, name="Main")


@pytest.fixture
def member_client(tenant):
    """``member_client("developer")`` → a token client for a member of ``tenant``."""

    def make(role: str, of=None) -> APIClient:
        user = factories.member(of or tenant, role)
        return factories.token_client(user)

    return make


@pytest.fixture(scope="session", autouse=True)
def _fast_flush() -> Iterator[None]:
    """Transactional tests end with the faster flush of tests/flush.py."""
    with flush.installed():
        yield


@pytest.fixture(scope="session", autouse=True)
def _remove_the_sqlite_test_files() -> Iterator[None]:
    """Servers' threads keep SQLite connections to the test database to the end, so its
    WAL files outlive Django's removal of the file itself (set up before the database,
    this runs after it is destroyed)."""
    yield
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and database.get("TEST", {}).get("NAME"):
        for suffix in ("-wal", "-shm"):
            Path(f"{database['TEST']['NAME']}{suffix}").unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):
    """Servers started by tests keep connections in their worker threads; end them so the
    test database can be dropped at the end of the run."""
    yield
    from django.db import DatabaseError, connection

    if connection.vendor != "postgresql":
        return
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    except DatabaseError:  # no test used the database, so it was never created
        pass
