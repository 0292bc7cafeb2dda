"""docker-compose.yml: the whole stack, validated by Debian's `docker-compose config`
against the committed example env file, its secrets only ever from `.env`, each
container given only the secrets it uses, and every command a real one.

Images cannot be pulled here, so nothing is started (docs/operations.md "Deploy").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.commands import check_command

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")
# Installed by .ci/run (apt-get install docker-compose), which sets this: there a missing
# docker-compose fails the tests instead of skipping them.
needs_compose = pytest.mark.skipif(
    COMPOSE is None and os.environ.get("REQUIRE_DOCKER_COMPOSE") != "1",
    reason="docker-compose is not installed (apt-get install docker-compose)",
)

REGISTRY_SERVICES = {"migrate", "web", "worker", "beat"}
REGISTRY_SECRETS = {
    "SECRET_KEY",
    "API_KEY_PEPPER",
    "RUNTIME_SECRETS_KEYS",
    "METRICS_TOKEN",
    "POSTGRES_PASSWORD",
    "RABBITMQ_PASSWORD",
}
SECRETS = {*REGISTRY_SECRETS, "GRAFANA_ADMIN_PASSWORD"}


def example_values() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    # A clean environment: compose fills ${...} from the shell's variables first.
    env = {"PATH": os.environ["PATH"], "HOME": str(env_file.parent)}
    argv = [COMPOSE or "docker-compose", "--env-file", str(env_file)]
    return subprocess.run(
        [*argv, "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def filled_env_file(tmp_path_factory) -> Path:
    """.env.example with every empty secret filled with a recognisable test value."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    lines = []
    for name, value in example_values().items():
        lines.append(f"{name}={value or f'test-value-of-{name}'}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def config(filled_env_file) -> dict:
    result = compose_config(filled_env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@needs_compose
def test_the_stack_has_every_service(config):
    assert set(config["services"]) == {
        "postgres",
        "redis",
        "rabbitmq",
        "migrate",
        "web",
        "worker",
        "beat",
        "prometheus",
        "grafana",
    }


@needs_compose
def test_the_example_with_its_secrets_left_empty_is_refused(tmp_path):
    env_file = tmp_path / ".env"
    shutil.copy(ROOT / ".env.example", env_file)

    result = compose_config(env_file)

    assert result.returncode != 0
    assert re.search(r"set \w+ in \.env", result.stderr), result.stderr


def test_the_example_holds_no_secret_value_and_env_files_are_never_committed():
    values = example_values()

    assert set(values) >= SECRETS
    assert all(values[name] == "" for name in SECRETS)
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    assert "!.env.example" in ignored


def test_the_compose_file_takes_every_secret_from_the_env_file():
    text = (ROOT / "docker-compose.yml").read_text()
    raw = yaml.safe_load(text)
    anchor = raw["x-registry"]["environment"]

    for name in SECRETS - {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD"}:
        assert f"${{{name}:?" in text, f"{name} must come from .env, required"
    assert anchor["SECRET_KEY"] == "${SECRET_KEY:?set SECRET_KEY in .env}"
    assert "${POSTGRES_PASSWORD:?" in anchor["DATABASE_URL"]
    assert "${RABBITMQ_PASSWORD:?" in anchor["CELERY_BROKER_URL"]


@needs_compose
def test_each_container_gets_only_the_secrets_it_uses(config, filled_env_file):
    services = config["services"]

    def secrets_in(service: str) -> set[str]:
        text = yaml.safe_dump(services[service])
        return {name for name in SECRETS if f"test-value-of-{name}" in text}

    for service in REGISTRY_SERVICES:
        assert secrets_in(service) == REGISTRY_SECRETS, service
    assert secrets_in("postgres") == {"POSTGRES_PASSWORD"}
    assert secrets_in("rabbitmq") == {"RABBITMQ_PASSWORD"}
    assert secrets_in("grafana") == {"GRAFANA_ADMIN_PASSWORD"}
    assert secrets_in("prometheus") == {"METRICS_TOKEN"}
    assert secrets_in("redis") == set()


@needs_compose
def test_the_registry_services_run_real_commands(config):
    services = config["services"]

    check_command(services["migrate"]["command"])
    check_command(services["worker"]["command"])
    check_command(services["beat"]["command"])
    # web runs the image's CMD (tests/deploy/test_dockerfile.py checks it).
    assert "command" not in services["web"]
    assert services["migrate"]["command"][:3] == ["python", "manage.py", "migrate"]
    assert services["worker"]["command"][3] == "worker"
    assert services["beat"]["command"][3] == "beat"


@needs_compose
def test_migrations_run_once_before_any_registry_process(config):
    services = config["services"]

    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    for name in REGISTRY_SERVICES:
        assert services[name]["read_only"] is True, name


@needs_compose
def test_prometheus_loads_the_alerts_and_grafana_the_dashboards(config):
    services = config["services"]
    prometheus_mounts = {
        v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]
    }
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    scrape = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    job = scrape["scrape_configs"][0]

    assert prometheus_mounts["/etc/prometheus/alerts.yml"] == str(
        ROOT / "deploy/prometheus/alerts.yml"
    )
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config_file = prometheus_mounts["/etc/prometheus/compose/prometheus.yml"]
    assert config_file == str(ROOT / "deploy/compose/prometheus.yml")
    assert "--config.file=/etc/prometheus/compose/prometheus.yml" in " ".join(
        services["prometheus"]["command"]
    )
    # The token file the entrypoint writes is the one the scrape presents, to web:8000.
    assert f"> {job['authorization']['credentials_file']} " in services["prometheus"]["command"][0]
    assert job["static_configs"][0]["targets"] == ["web:8000"]
    assert job["metrics_path"] == "/metrics"
    # The Celery worker's own counters, on the port its environment names.
    worker_job = scrape["scrape_configs"][1]
    port = services["worker"]["environment"]["CELERY_METRICS_PORT"]
    assert worker_job["static_configs"][0]["targets"] == [f"worker:{port}"]
    assert grafana_mounts["/etc/grafana/provisioning"] == str(ROOT / "deploy/grafana/provisioning")
    # Where deploy/grafana/provisioning/dashboards looks for them.
    assert grafana_mounts["/var/lib/grafana/dashboards/agent-registry"] == str(
        ROOT / "deploy/grafana/dashboards"
    )


def test_the_compose_prometheus_host_name_is_an_allowed_host():
    # Prometheus scrapes web:8000, so Django must accept Host "web".
    assert "web" in example_values()["ALLOWED_HOSTS"].split(",")
