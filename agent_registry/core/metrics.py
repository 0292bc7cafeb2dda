"""Prometheus metrics of the management plane, served at /metrics.

Who may read them: with ``METRICS_TOKEN`` set, a caller presenting it as
``Authorization: Bearer <token>`` (compared in constant time; any worker of any
process answers the same, so it works behind several uvicorn workers). Without a
token, only callers on this machine (loopback) — the embedded default; production
refuses to start without a token (core/checks.py, ``agent_registry.E006``).

Several worker processes (``uvicorn --workers N``) add up through prometheus_client's
multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts:
prometheus_client picks its value store at import), every process writes its counters
and histograms to files there, and a scrape, whichever worker answers it, sums them all
(docs/operations.md, "Metrics", has the choice and its cost). Values read at scrape time
(agents by state, jobs' last success, readiness) are collectors that apps add with
``add_collector``: they read the database, which every process sees alike.
"""

from __future__ import annotations

import fcntl
import hmac
import ipaddress
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_registry.core.error_envelope import envelope, require_get

log = structlog.get_logger(__name__)

state_transitions_total = Counter(
    "agent_registry_state_transitions_total",
    "Agent lifecycle transitions.",
    ["from_state", "to_state"],
)


# --- Collectors read at scrape time -----------------------------------------------------

_collectors: list[_Guarded] = []


class _Guarded(Collector):
    """A scrape-time collector whose failure (the database down) drops only its own
    metrics: the scrape still answers, with ``agent_registry_ready 0`` in it."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def describe(self) -> Iterable[Metric]:
        describe = getattr(self.collector, "describe", None)
        return describe() if describe is not None else ()

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self.collector.collect())
        except Exception:
            log.warning("metrics_collector_failed", collector=type(self.collector).__name__)
            return []


def add_collector(collector: Collector) -> None:
    """Serve ``collector`` at /metrics (from an app's ``ready``; a second ``ready`` adding
    another of the same class changes nothing)."""
    if any(type(known.collector) is type(collector) for known in _collectors):
        return
    guarded = _Guarded(collector)
    _collectors.append(guarded)
    if not multiprocess_dir():
        REGISTRY.register(guarded)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def exposition_registry() -> CollectorRegistry:
    """What a scrape serves: this process's registry, or (multiprocess mode) every
    process's files summed plus the scrape-time collectors."""
    if not multiprocess_dir():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in _collectors:
        registry.register(collector)
    return registry


# --- Multiprocess housekeeping ------------------------------------------------------------

# prometheus_client names each file <kind>[_<mode>]_<pid>.db.
_FILE_PID = re.compile(r"_(\d+)\.db$")
_MARKER = "server.id"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _server_id() -> str:
    """The supervisor that started this worker (its pid and start time, so a reused pid
    is a different server)."""
    parent = os.getppid()
    try:
        started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "?"
    return f"{parent}:{started}"


def worker_started(directory: str | None = None) -> list[int]:
    """Tidy the multiprocess directory as a web worker starts; returns the dead pids handled.

    * Files left by an earlier server (another supervisor wrote the marker) whose
      process is gone are deleted: a restart starts the sums from zero, which
      Prometheus reads as the counter reset it is.
    * Within the same server, a worker that died (and that uvicorn replaced) keeps its
      counter and histogram files, so the sums never go down mid-run; only its
      live gauges are dropped (``mark_process_dead``).
    """
    directory = directory if directory is not None else multiprocess_dir()
    if not directory:
        return []
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    me = _server_id()
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two workers starting at once: one tidies
        marker = root / _MARKER
        earlier_server = not marker.exists() or marker.read_text() != me
        dead: set[int] = set()
        for path in root.glob("*.db"):
            match = _FILE_PID.search(path.name)
            if match is None or _alive(int(match.group(1))):
                continue
            pid = int(match.group(1))
            dead.add(pid)
            if earlier_server:
                path.unlink(missing_ok=True)
        if not earlier_server:
            for pid in dead:
                multiprocess.mark_process_dead(pid, directory)
        marker.write_text(me)
    return sorted(dead)


def serve_worker_metrics(
    port: int,
    addr: str = "0.0.0.0",  # noqa: S104
) -> tuple[WSGIServer, threading.Thread]:
    """A Celery worker's own /metrics on ``port`` (its tasks count billing syncs, Waldur
    orders, ...), summed over its pool's processes in multiprocess mode. Unauthenticated:
    reachable only by Prometheus (a NetworkPolicy; docs/operations.md, "Metrics")."""
    from prometheus_client import start_http_server

    directory = multiprocess_dir()
    if directory:
        # The worker's main process starts before its pool: every file of a dead pid is
        # left from an earlier run.
        Path(directory).mkdir(parents=True, exist_ok=True)
        for path in Path(directory).glob("*.db"):
            match = _FILE_PID.search(path.name)
            if match is not None and not _alive(int(match.group(1))):
                path.unlink(missing_ok=True)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return start_http_server(port, addr=addr, registry=registry)


# --- Jobs and readiness, read at scrape time ------------------------------------------------


class JobCollector(Collector):
    """Each scheduled job's last success and failure, and its runs (core.JobStatus rows,
    written by whichever process ran the job: the worker, beat's task, the thread)."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # without describe, registering would query the database

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        from agent_registry.core import jobs
        from agent_registry.core.models import JobStatus

        interval = GaugeMetricFamily(
            "agent_registry_job_interval_seconds",
            "How often each scheduled job is due (a daily job: 86400).",
            labels=["job_name"],
        )
        for name, job in jobs.schedule().items():
            interval.add_metric([name], jobs.interval_seconds(job))
        success = GaugeMetricFamily(
            "agent_registry_job_last_success_timestamp_seconds",
            "When each job last ended without an error (Unix time; absent: never).",
            labels=["job_name"],
        )
        failure = GaugeMetricFamily(
            "agent_registry_job_last_failure_timestamp_seconds",
            "When each job last raised (Unix time; absent: never).",
            labels=["job_name"],
        )
        runs = CounterMetricFamily(
            "agent_registry_job_runs",
            "Runs of each job by outcome (success, failure).",
            labels=["job_name", "outcome"],
        )
        for row in JobStatus.objects.all():
            if row.last_success_at is not None:
                success.add_metric([row.name], row.last_success_at.timestamp())
            if row.last_failure_at is not None:
                failure.add_metric([row.name], row.last_failure_at.timestamp())
            runs.add_metric([row.name, "success"], row.successes)
            runs.add_metric([row.name, "failure"], row.failures)
        yield from (interval, success, failure, runs)


class ReadinessCollector(Collector):
    """/health/ready's required checks as numbers: 1 when they pass, and each check's
    state. The optional checks (Waldur, Stripe) ask outside systems and are left out:
    a scrape must not become load on them; their failures show in their own metrics."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from agent_registry.core.health import core_checks

        results = core_checks()
        ready = GaugeMetricFamily(
            "agent_registry_ready", "1 when /health/ready's required checks pass, else 0."
        )
        ready.add_metric(
            [],
            0.0
            if any(r["status"] == "unhealthy" and required for r, required in results.values())
            else 1.0,
        )
        checks = GaugeMetricFamily(
            "agent_registry_readiness_check_up",
            "Each of the registry's own readiness checks: 1 healthy or skipped, 0 unhealthy.",
            labels=["check", "required"],
        )
        for name, (result, required) in results.items():
            up = 0.0 if result["status"] == "unhealthy" else 1.0
            checks.add_metric([name, str(required).lower()], up)
        yield from (ready, checks)


# --- The endpoint -----------------------------------------------------------------------------


def _from_loopback(request: HttpRequest) -> bool:
    # REMOTE_ADDR is the socket's peer (never X-Forwarded-For): a proxy on this
    # machine makes everyone loopback, which is why production needs the token.
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def scrape_allowed(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    if not token:
        return settings.APP_ENV != "production" and _from_loopback(request)
    authorization = request.headers.get("Authorization", "")
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode("utf-8", "surrogatepass"), token.encode("utf-8")
    )


@require_get
def metrics(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request):
        response = JsonResponse(
            envelope("not_authenticated", "The metrics need 'Authorization: Bearer <token>'."),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # Apps add their own gauges as collectors (agents/metrics.py: agents by state).
    return HttpResponse(generate_latest(exposition_registry()), content_type=CONTENT_TYPE_LATEST)
