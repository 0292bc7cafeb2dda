"""The monitoring proven with the real tools: promtool checks and unit-tests the alerts,
and a real Prometheus scraping a running registry answers every expression of every
dashboard panel and every alert without an error.

Needs Debian's ``prometheus`` package (``promtool`` and ``prometheus``); .ci/run installs
it and sets REQUIRE_PROMETHEUS=1, which makes its absence a failure instead of a skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from agent_registry.core import jobs
from tests import factories
from tests.operations.registry import ROOT, RegistryServer
from tests.waiting import WAIT_SECONDS, bound_socket, wait_until

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

pytestmark = pytest.mark.skipif(
    not (shutil.which("promtool") and shutil.which("prometheus"))
    and os.environ.get("REQUIRE_PROMETHEUS") != "1",
    reason="needs Debian's prometheus package (apt-get install prometheus; .ci/run does)",
)

# Grafana's variables, as a query with every option chosen would read.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
}


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (apt-get install prometheus)"
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )


# --- The files ----------------------------------------------------------------------------


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def panel_expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel, variables substituted."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            # A chosen variable is a regex matcher (=~"$tenant"): "All" is ".*".
            expr = re.sub(r"\$\{?[a-z_]+\}?", ".*", expr)
            found.append((panel["title"], expr))
    return found


def variable_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(metric, label) of every ``label_values(metric, label)`` variable."""
    found = []
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
        assert match, f"{variable['name']}: not a label_values query"
        found.append((match.group(1), match.group(2)))
    return found


def test_the_alert_rules_are_valid():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_config_is_valid():
    config = DEPLOY / "prometheus" / "prometheus.yml"
    # Syntax only: the token file it names exists where Prometheus runs, not here.
    result = promtool("check", "config", "--syntax-only", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_in_the_promtool_unit_tests():
    unit_tests = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
    result = promtool("test", "rules", *map(str, unit_tests))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = "\n".join(path.read_text() for path in unit_tests)
    for rule in alert_rules():
        name = rule["alert"]
        # Each alert is expected once with alerts and once with none.
        assert re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tested), name
        assert re.search(rf"alertname: {name}\n\s+exp_alerts: \[\]", tested), name


def test_every_alert_has_a_runbook_paragraph():
    runbooks = OPERATIONS_DOC.read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{name.lower()}"
        heading = re.search(rf"^#### {name}\n\n(.+?)(?=\n#|\Z)", runbooks, re.M | re.S)
        assert heading, f"no runbook heading for {name}"
        assert len(heading.group(1).split()) > 20, f"the runbook of {name} is a stub"


def test_the_dashboards_are_the_documents_three_provisioned_from_one_folder():
    assert [path.name for path in DASHBOARDS] == [
        "agent-billing.json",
        "agent-registry-overview.json",
        "agent-usage.json",
    ]
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "agent-registry.yml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids = {
            target["datasource"]["uid"]
            for panel in dashboard["panels"]
            for target in panel.get("targets", [])
        }
        assert uids == {datasource["uid"]}, path.name
        assert panel_expressions(dashboard), path.name


# --- A real Prometheus against a running registry ------------------------------------------


class Prometheus:
    def __init__(self, workdir: Path, target: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "agent-registry",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        # Prometheus binds its own port: take a free one and free it just before.
        probe = bound_socket()
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=self.log,
        )

    def query(self, expr: str) -> dict:
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": expr}, timeout=WAIT_SECONDS
        )
        return response.json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def registry(transactional_db, tmp_path) -> Iterator[RegistryServer]:
    server = RegistryServer(workers=2, metrics_dir=tmp_path / "metrics", log=tmp_path / "log")
    yield server
    server.stop()


@pytest.fixture
def prometheus(registry, tmp_path) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{registry.port}")
    yield server
    server.stop()


def traffic(registry: RegistryServer, api_key: str) -> None:
    """Calls answered 200, and refusals (a wrong key, an unknown agent) for the errors."""
    with httpx.Client(base_url=registry.url, timeout=WAIT_SECONDS) as client:
        for path, key in [
            ("/api/v1/agents/echo/invoke", api_key),
            ("/api/v1/agents/echo/invoke", "ar_live_wrong"),
            ("/api/v1/agents/nobody/invoke", api_key),
        ]:
            client.post(path, json={"input": "hi"}, headers={"X-API-Key": key})
        client.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {api_key}"},
        )


def scraped_twice_since(prometheus: Prometheus, moment: float) -> bool:
    """Prometheus's last scrape of the registry succeeded and began after ``moment``,
    with an earlier one in the last minute too (rate() needs two samples)."""
    try:
        targets = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=WAIT_SECONDS).json()
    except httpx.HTTPError:
        return False
    active = targets["data"]["activeTargets"]
    if not active or active[0]["health"] != "up":
        return False
    # "2026-12-06T11:10:00.123456789Z" (or an offset): to the second, earlier than the
    # truth, so safe; Python reads at most six digits of a fraction.
    stamp = re.sub(r"\.\d+", "", active[0]["lastScrape"]).replace("Z", "+00:00")
    seconds = datetime.fromisoformat(stamp).timestamp()
    samples = prometheus.query('count_over_time(up{job="agent-registry"}[1m])')
    counted = samples["data"]["result"]
    return seconds > moment and bool(counted) and float(counted[0]["value"][1]) >= 2


@pytest.mark.slow
@pytest.mark.real_services
def test_every_dashboard_and_alert_expression_answers_on_a_real_prometheus(registry, prometheus):
    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="echo"), monthly_quota=1000
    )
    for job in ("aggregate-recent-usage", "reconcile-usage"):  # the jobs' metrics have rows
        jobs.run(job)
    traffic(registry, issued.api_key)
    first = time.time()
    wait_until(lambda: scraped_twice_since(prometheus, first), what="two scrapes of the traffic")
    traffic(registry, issued.api_key)  # and more, so rates have something to show
    second = time.time()
    wait_until(lambda: scraped_twice_since(prometheus, second), what="a scrape after more traffic")

    failures = []
    answered: dict[str, list] = {}
    expressions = [
        (f"{path.name}: {title}", expr)
        for path in DASHBOARDS
        for title, expr in panel_expressions(json.loads(path.read_text()))
    ] + [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    for name, expr in expressions:
        body = prometheus.query(expr)
        if body.get("status") != "success" or body["data"]["resultType"] not in {
            "vector",
            "scalar",
            "matrix",
        }:
            failures.append(f"{name}: {expr}\n  -> {body}")
        else:
            answered[name] = body["data"]["result"]
    assert not failures, "\n".join(failures)

    for path in DASHBOARDS:
        for metric, label in variable_queries(json.loads(path.read_text())):
            values = httpx.get(
                f"{prometheus.url}/api/v1/label/{label}/values",
                params={"match[]": metric},
                timeout=WAIT_SECONDS,
            ).json()
            assert values["status"] == "success", (path.name, metric, label)

    # Not only well-formed: the panels fed by this traffic and these rows have data.
    for name in [
        "agent-registry-overview.json: Requests per second by endpoint",
        "agent-registry-overview.json: Agents by lifecycle state",
        "agent-registry-overview.json: Ready (required checks)",
        "agent-registry-overview.json: Time since each job last succeeded",
        "agent-usage.json: Calls in the range by tenant and agent",
        "agent-usage.json: Monthly quota used by tenant and agent",
        "agent-billing.json: Syncs in the range by channel and status",
        "agent-billing.json: Reconciliation differences (last run)",
    ]:
        assert answered[name], f"{name}: no data"

    # Prometheus evaluated every rule without an error.
    rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=WAIT_SECONDS).json()
    loaded = [rule for group in rules["data"]["groups"] for rule in group["rules"]]
    assert sorted(rule["name"] for rule in loaded) == sorted(r["alert"] for r in alert_rules())
    wait_until(
        lambda: all(
            rule["health"] == "ok"
            for group in httpx.get(f"{prometheus.url}/api/v1/rules", timeout=WAIT_SECONDS).json()[
                "data"
            ]["groups"]
            for rule in group["rules"]
        ),
        what="every rule evaluated without an error",
    )
