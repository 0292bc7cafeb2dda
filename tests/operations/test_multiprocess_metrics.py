"""Metrics add up across uvicorn workers (multiprocess mode), on real PostgreSQL and Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests import factories
from tests.operations.registry import RegistryServer
from tests.waiting import WAIT_SECONDS

pytestmark = [pytest.mark.real_services, pytest.mark.slow]

CALLS = 60


@pytest.fixture
def two_workers(transactional_db, tmp_path) -> Iterator[RegistryServer]:
    server = RegistryServer(workers=2, metrics_dir=tmp_path / "metrics", log=tmp_path / "log")
    yield server
    server.stop()


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def invoke(url: str, api_key: str) -> int:
    # A new connection per call (Connection: close), so the kernel spreads the calls
    # over both workers' accept queues.
    return httpx.post(
        f"{url}/api/v1/agents/echo/invoke",
        json={"input": "hi"},
        headers={"X-API-Key": api_key, "Connection": "close"},
        timeout=WAIT_SECONDS,
    ).status_code


def calls_per_worker(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of invoke calls answered 200, read from its file."""
    counted = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(re.search(r"_(\d+)\.db$", path.name).group(1))
        for metric in multiprocess.MultiProcessCollector.merge([str(path)]):
            for s in metric.samples:
                if s.name == "agent_registry_requests_total" and s.labels.get("status") == "200":
                    counted[pid] = counted.get(pid, 0) + s.value
    return counted


def assert_a_counter_equals_the_calls_made_through_both_workers(two_workers, issued) -> None:
    tenant = issued.access.tenant.slug

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: invoke(two_workers.url, issued.api_key), range(CALLS)))

    assert statuses == [200] * CALLS
    per_worker = calls_per_worker(two_workers.metrics_dir)
    assert sorted(per_worker) == sorted(two_workers.worker_pids())
    assert all(count > 0 for count in per_worker.values()), per_worker  # both served
    # Whichever worker answers the scrape, it reports every worker's calls.
    for _ in range(4):
        text = two_workers.scrape()
        requests = sample(
            text,
            "agent_registry_requests_total",
            endpoint="invoke",
            agent="echo",
            status="200",
        )
        assert requests == CALLS
        assert sample(text, "agent_registry_api_calls_total", tenant=tenant, agent="echo") == CALLS
        latency = sample(
            text, "agent_registry_request_duration_seconds_count", endpoint="invoke", agent="echo"
        )
        assert latency == CALLS


# Every label any metric of the registry may carry (docs/operations.md, "Metrics").
BOUNDED_LABELS = {
    "endpoint",
    "agent",
    "status",
    "tenant",
    "direction",
    "code",
    "state",
    "from_state",
    "to_state",
    "channel",
    "type",
    "outcome",
    "event_type",
    "job_name",
    "check",
    "required",
    "le",
}


def assert_no_label_holds_a_key_a_request_id_or_an_id_a_caller_typed(two_workers, issued) -> None:
    request_ids = []
    with httpx.Client(base_url=two_workers.url, timeout=WAIT_SECONDS) as client:
        for path, key in [
            ("/api/v1/agents/echo/invoke", issued.api_key),
            ("/api/v1/agents/echo/invoke", issued.api_key[:-2] + "xx"),  # checksum wrong
            ("/api/v1/agents/made-up-by-a-caller/invoke", issued.api_key),
        ]:
            response = client.post(path, json={"input": "hi"}, headers={"X-API-Key": key})
            request_ids.append(response.headers["X-Request-ID"])

    labels = [
        (s.name, name, value)
        for family in text_string_to_metric_families(two_workers.scrape())
        for s in family.samples
        for name, value in s.labels.items()
    ]

    assert labels
    assert {name for _, name, _ in labels} <= BOUNDED_LABELS
    secrets = [issued.api_key, issued.access.key_prefix, *request_ids, "made-up-by-a-caller"]
    leaked = [(m, n, v) for m, n, v in labels for secret in secrets if secret in v]
    assert not leaked
    assert not [v for _, _, v in labels if re.search(r"agr_|[0-9a-f]{32}", v)]


def test_two_workers_add_up_and_label_nothing_a_caller_sent(two_workers):
    # One server start for both (starting two workers is most of the time): the calls
    # are counted first, then the refused ones are sent and every label is read.
    issued = factories.make_subscription(
        agent=factories.make_agent(agent_id="echo", max_concurrent_requests=100),
        rate_limit_per_second=10_000,
    )

    assert_a_counter_equals_the_calls_made_through_both_workers(two_workers, issued)
    assert_no_label_holds_a_key_a_request_id_or_an_id_a_caller_typed(two_workers, issued)
