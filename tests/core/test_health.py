"""Liveness and readiness: /health/live answers while the process runs; /health/ready
reports each dependency and answers 503 when a required one is down."""

from __future__ import annotations

import json
import socket

import pytest
from django.db import connection
from django.test import override_settings

from agent_registry.core import health

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1//"
LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def redis_cache(location: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ready(client):
    response = client.get("/health/ready")
    return response, json.loads(response.content)


def test_live_answers_while_the_process_runs(anonymous_client):
    # No django_db mark: a query here would fail the test, so liveness needs no database.
    response = anonymous_client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_ready_reports_every_dependency(anonymous_client):
    response, body = ready(anonymous_client)

    assert response.status_code == 200
    assert body["status"] == "healthy"
    # The core's three, and the optional checks apps register (Waldur: skipped while off).
    assert set(body["checks"]) == {"database", "cache", "broker", "waldur"}
    for check in body["checks"].values():
        assert check["status"] in {"healthy", "skipped"}
        assert isinstance(check["latency_ms"], int | float)
        assert isinstance(check["required"], bool)
    database = body["checks"]["database"]
    assert database == database | {"status": "healthy", "required": True}
    assert database["vendor"] == connection.vendor


@pytest.mark.django_db
@override_settings(REDIS_URL="", CACHES=LOCAL_CACHE, CELERY_BROKER_URL="")
def test_embedded_mode_needs_only_the_database(anonymous_client):
    response, body = ready(anonymous_client)

    assert response.status_code == 200
    assert body["status"] == "healthy"
    cache, broker = body["checks"]["cache"], body["checks"]["broker"]
    assert cache["required"] is False
    assert cache["status"] == "healthy"
    assert cache["backend"] == "LocMemCache"
    assert broker["required"] is False
    assert broker["status"] == "skipped"


@pytest.mark.real_services
@pytest.mark.django_db
def test_with_redis_configured_the_cache_is_required_and_checked(anonymous_client):
    response, body = ready(anonymous_client)

    assert response.status_code == 200
    cache = body["checks"]["cache"]
    assert cache["required"] is True
    assert cache["status"] == "healthy"
    assert cache["backend"] == "RedisCache"


@pytest.mark.django_db
def test_a_database_outage_makes_the_service_not_ready(anonymous_client, monkeypatch):
    def database_down():
        raise ConnectionError("could not connect to server: Connection refused")

    monkeypatch.setattr(health, "check_database", database_down)

    response, body = ready(anonymous_client)

    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    database = body["checks"]["database"]
    assert database["status"] == "unhealthy"
    assert database["required"] is True
    assert "Connection refused" in database["error"]


@pytest.mark.django_db
def test_an_unreachable_redis_makes_the_service_not_ready(anonymous_client):
    # Changing CACHES makes Django drop its cache connections (setting_changed), so the
    # check really talks to the unreachable server; the override ends before teardown.
    with override_settings(
        REDIS_URL=UNREACHABLE_REDIS, CACHES=redis_cache(UNREACHABLE_REDIS), CELERY_BROKER_URL=""
    ):
        response, body = ready(anonymous_client)

    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    cache = body["checks"]["cache"]
    assert cache["status"] == "unhealthy"
    assert cache["required"] is True
    assert "Connection" in cache["error"]
    assert body["checks"]["database"]["status"] == "healthy"


@pytest.mark.django_db
@override_settings(REDIS_URL="", CACHES=LOCAL_CACHE, CELERY_BROKER_URL=UNREACHABLE_BROKER)
def test_an_unreachable_broker_makes_the_service_not_ready(anonymous_client):
    response, body = ready(anonymous_client)

    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    broker = body["checks"]["broker"]
    assert broker["status"] == "unhealthy"
    assert broker["required"] is True
    assert broker["error"]
    assert body["checks"]["cache"]["status"] == "healthy"


@pytest.mark.django_db
def test_every_failing_dependency_is_reported_at_once(anonymous_client, monkeypatch):
    monkeypatch.setattr(health, "check_database", lambda: 1 / 0)
    with override_settings(
        REDIS_URL=UNREACHABLE_REDIS,
        CACHES=redis_cache(UNREACHABLE_REDIS),
        CELERY_BROKER_URL=UNREACHABLE_BROKER,
    ):
        response, body = ready(anonymous_client)

    assert response.status_code == 503
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "unhealthy",
        "cache": "unhealthy",
        "broker": "unhealthy",
        "waldur": "skipped",  # optional, and off here
    }


@pytest.mark.django_db
@pytest.mark.skipif(not port_open("127.0.0.1", 5672), reason="no RabbitMQ on 127.0.0.1:5672")
def test_a_reachable_rabbitmq_is_reported_healthy(anonymous_client):
    with override_settings(CELERY_BROKER_URL=LOCAL_RABBITMQ):
        response, body = ready(anonymous_client)

    assert response.status_code == 200, body
    broker = body["checks"]["broker"]
    assert broker["status"] == "healthy"
    assert broker["required"] is True
    assert broker["transport"] == "amqp"


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_get_405_in_the_error_envelope(anonymous_client, method, path):
    response = getattr(anonymous_client, method)(path)

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["request_id"] == response["X-Request-ID"]


def test_a_post_is_refused_by_method_even_with_csrf_checks_on():
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/health/ready")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_optional_check_of_an_outside_system_is_reused_for_its_max_age(client, monkeypatch):
    calls = []

    def check() -> dict:
        calls.append(1)
        return {"calls": len(calls)}

    monkeypatch.setattr(health, "_optional_checks", {})
    health.register("outside", check, max_age=60)
    first = client.get("/health/ready").json()["checks"]["outside"]
    second = client.get("/health/ready").json()["checks"]["outside"]
    assert len(calls) == 1
    assert first["calls"] == second["calls"] == 1
    assert "cached_for_s" in second
    assert "cached_for_s" not in first

    health.forget("outside")
    client.get("/health/ready")
    assert len(calls) == 2
