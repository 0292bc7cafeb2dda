"""Production refuses embedded defaults; logs are JSON with the request id; metrics."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.checks import run_checks

from agent_registry.core.request_id import bind_request_id, reset_request_id


def test_production_refuses_the_embedded_defaults(settings):
    settings.APP_ENV = "production"
    settings.DEBUG = True
    settings.SECRET_KEY = settings.INSECURE_DEFAULT_SECRET_KEY
    settings.API_KEY_PEPPER = settings.INSECURE_DEFAULT_SECRET_KEY
    settings.DATABASES = {**settings.DATABASES}
    settings.DATABASES["default"] = {
        **settings.DATABASES["default"],
        "ENGINE": "django.db.backends.sqlite3",
    }
    settings.REDIS_URL = ""

    ids = {error.id for error in run_checks()}

    assert {f"agent_registry.E00{n}" for n in range(1, 6)} <= ids


def test_development_has_no_such_complaints(settings):
    settings.APP_ENV = "development"

    assert not [e for e in run_checks() if e.id.startswith("agent_registry.")]


def test_log_lines_are_json_with_the_request_id(capsys):
    from django.conf import settings

    handler = logging.StreamHandler()
    formatter_config = settings.LOGGING["formatters"]["json"]
    factory = formatter_config["()"]
    handler.setFormatter(factory(**{k: v for k, v in formatter_config.items() if k != "()"}))
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = bind_request_id("req-12345678")
    try:
        logger.info("something happened")
    finally:
        reset_request_id(token)
        logger.removeHandler(handler)

    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "something happened"
    assert line["request_id"] == "req-12345678"
    assert line["level"] == "info"
    assert "timestamp" in line


@pytest.mark.django_db
def test_metrics_are_served_in_prometheus_format(anonymous_client):
    from tests import factories

    factories.make_agent()

    response = anonymous_client.get("/metrics")

    text = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'agent_registry_agents_total{state="active"} 1.0' in text
    assert "agent_registry_state_transitions_total" in text


def test_production_refuses_to_start_without_a_metrics_token(settings):
    settings.APP_ENV = "production"
    settings.METRICS_TOKEN = ""

    assert "agent_registry.E006" in {error.id for error in run_checks()}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Token s3cret-metrics-token", "Bearer", "Bearer s3cret-metrics"],
)
def test_metrics_with_a_token_configured_refuse_callers_without_it(
    anonymous_client, settings, authorization
):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = anonymous_client.get("/metrics", **headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.json()["error"]["request_id"] == response["X-Request-ID"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"agent_registry_" not in response.content


@pytest.mark.django_db
def test_metrics_with_a_token_configured_serve_the_scraper_presenting_it(
    anonymous_client, settings
):
    settings.METRICS_TOKEN = "s3cret-metrics-token"

    response = anonymous_client.get(
        "/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token", REMOTE_ADDR="203.0.113.9"
    )

    assert response.status_code == 200
    assert b"agent_registry_agents_total" in response.content


@pytest.mark.django_db
def test_metrics_without_a_token_answer_only_callers_on_this_machine(anonymous_client, settings):
    settings.METRICS_TOKEN = ""

    remote = anonymous_client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    local = anonymous_client.get("/metrics", REMOTE_ADDR="::1")

    assert remote.status_code == 401
    assert remote.json()["error"]["code"] == "not_authenticated"
    assert local.status_code == 200


@pytest.mark.django_db
def test_metrics_without_a_token_in_production_answer_no_one(anonymous_client, settings):
    settings.APP_ENV = "production"
    settings.METRICS_TOKEN = ""

    assert anonymous_client.get("/metrics").status_code == 401


# ops-deploy (issue 16): a Secret or env file with the key but no value (the shipped
# templates have them empty) must not start a production registry with an empty pepper.
def test_production_refuses_an_empty_api_key_pepper(settings):
    settings.APP_ENV = "production"
    settings.API_KEY_PEPPER = ""

    assert "agent_registry.E007" in {error.id for error in run_checks()}


# ops-deploy (issue 16): DB_POOL_MAX_SIZE bounds the PostgreSQL connections per process
# (under ASGI each request has a thread, hence a connection, of its own otherwise).
POOLED_PROCESS = """
import json, logging, threading
import django
logging.basicConfig(level=logging.WARNING)  # the pool's reasons, on stderr
django.setup()
from django.db import connection, connections
from django.conf import settings

answers = []

def query():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        answers.append(cursor.fetchone()[0])
    connection.close()  # what the end of a request does: back into the pool

threads = [threading.Thread(target=query) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
pool = connections["default"].pool
print(json.dumps({
    "options": settings.DATABASES["default"]["OPTIONS"].get("pool"),
    "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
    "pool_connections": pool.get_stats()["pool_size"] if pool else None,
    "answers": answers,
}))
"""


@pytest.mark.slow  # a Django process of its own: ~3 s of CPU to start
@pytest.mark.real_services
@pytest.mark.django_db
def test_a_pool_bounds_the_connections_of_a_process():
    import os
    import subprocess
    import sys

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the pool is PostgreSQL's")
    db = connection.settings_dict  # the test database, which exists now
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DB_POOL_MAX_SIZE": "2",
        "DJANGO_SETTINGS_MODULE": "agent_registry.settings",
    }

    result = subprocess.run(
        [sys.executable, "-c", POOLED_PROCESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["options"] == {"min_size": 1, "max_size": 2, "timeout": 30.0}
    assert figures["conn_max_age"] == 0
    assert figures["answers"] == [1] * 8, result.stderr[-2000:]
    assert 1 <= figures["pool_connections"] <= 2  # eight threads, at most two connections
