"""What /metrics reads at scrape time (jobs, readiness) and how the multiprocess
directory is tidied as a worker starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.db import DatabaseError
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agent_registry.core import jobs, metrics
from agent_registry.core.jobs import Every, Job
from agent_registry.core.models import JobStatus
from tests.waiting import WAIT_SECONDS, bound_socket


def samples(collector) -> dict[tuple, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }


def boom() -> None:
    raise RuntimeError("the job broke")


# --- Jobs -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_jobs_runs_are_recorded_with_its_last_success_failure_and_numeric_result():
    assert jobs.run_job("count", Job(lambda: 7, Every(60), "counts")) == 7
    with pytest.raises(RuntimeError):
        jobs.run_job("count", Job(boom, Every(60), "breaks"))

    row = JobStatus.objects.get(name="count")
    assert (row.successes, row.failures) == (1, 1)
    assert row.last_result == 7.0
    assert row.last_error == "RuntimeError: the job broke"
    assert row.last_failure_at >= row.last_success_at


@pytest.mark.django_db
def test_the_job_collector_serves_each_scheduled_jobs_interval_and_recorded_runs():
    jobs.run_job("aggregate-recent-usage", Job(lambda: 3, Every(300), "aggregates"))

    found = samples(metrics.JobCollector())

    job = (("job_name", "aggregate-recent-usage"),)
    assert found[("agent_registry_job_interval_seconds", job)] == 300
    assert found[("agent_registry_job_interval_seconds", (("job_name", "reconcile-usage"),))] == (
        86400
    )
    assert found[("agent_registry_job_last_success_timestamp_seconds", job)] > 0
    assert ("agent_registry_job_last_failure_timestamp_seconds", job) not in found
    runs = (("job_name", "aggregate-recent-usage"), ("outcome", "success"))
    assert found[("agent_registry_job_runs_total", runs)] == 1


def test_a_job_runs_even_when_its_outcome_cannot_be_recorded():
    # No database access in this test: the bookkeeping fails, the job's result stands.
    assert jobs.run_job("count", Job(lambda: 7, Every(60), "counts")) == 7


# --- Readiness and a failing collector ----------------------------------------------------


@pytest.mark.django_db
def test_readiness_is_one_while_the_required_checks_pass():
    found = samples(metrics.ReadinessCollector())

    assert found[("agent_registry_ready", ())] == 1.0
    database = (("check", "database"), ("required", "true"))
    assert found[("agent_registry_readiness_check_up", database)] == 1.0


@pytest.mark.django_db
def test_a_scrape_still_answers_when_a_collector_cannot_reach_the_database(
    anonymous_client, monkeypatch
):
    def unreachable(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(JobStatus.objects, "all", unreachable)

    response = anonymous_client.get("/metrics")

    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert "agent_registry_ready" in names
    assert "agent_registry_job_last_success_timestamp_seconds" not in names


# --- The multiprocess directory -------------------------------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def files(directory: Path) -> set[str]:
    return {path.name for path in directory.glob("*.db")}


def test_a_new_server_deletes_the_files_of_the_processes_of_the_last_one(tmp_path):
    gone, me = dead_pid(), os.getpid()
    for name in (f"counter_{gone}.db", f"histogram_{gone}.db", f"counter_{me}.db"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "server.id").write_text("1:an earlier server")

    assert metrics.worker_started(str(tmp_path)) == [gone]

    assert files(tmp_path) == {f"counter_{me}.db"}


def test_a_worker_restarted_by_its_server_keeps_the_dead_ones_counters_but_not_its_live_gauges(
    tmp_path,
):
    metrics.worker_started(str(tmp_path))  # this server's first worker writes the marker
    gone = dead_pid()
    for name in (f"counter_{gone}.db", f"gauge_livesum_{gone}.db", f"gauge_mostrecent_{gone}.db"):
        (tmp_path / name).write_bytes(b"")

    assert metrics.worker_started(str(tmp_path)) == [gone]

    # The sums never go down mid-run: counters (and last-written gauges) stay.
    assert files(tmp_path) == {f"counter_{gone}.db", f"gauge_mostrecent_{gone}.db"}


def test_without_a_multiprocess_directory_nothing_is_tidied(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    assert metrics.worker_started() == []


def test_a_celery_worker_serves_its_counters_after_dropping_an_earlier_runs_files(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gone = dead_pid()
    (tmp_path / f"counter_{gone}.db").write_bytes(b"")
    port = bound_port()

    server, thread = metrics.serve_worker_metrics(port, addr="127.0.0.1")
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=WAIT_SECONDS)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT_SECONDS)

    assert response.status_code == 200
    assert files(tmp_path) == set()  # the main process starts before its pool: all dead


def bound_port() -> int:
    # start_http_server binds the port itself: a free one, freed just before.
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port
