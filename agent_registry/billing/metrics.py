"""Billing's Prometheus metrics, shared by every billing channel (bounded labels only).

Billing owns the definitions; a channel (``waldur``, ``stripe``) counts each
sync of a statement's part it makes with ``sync_counted`` and times it with
``sync_timed``. ``channel`` is a channel name from ``BILLING_CHANNELS``; ``status`` one
of ``SYNC_STATUSES``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

SYNC_STATUSES = ("success", "failed", "skipped")

BILLING_SYNC = Counter(
    "agent_registry_billing_sync_total",
    "Syncs of billed usage to a billing channel, by channel and status "
    "(success; failed; skipped: unchanged since the last sync).",
    ["channel", "status"],
)
BILLING_SYNC_SECONDS = Histogram(
    "agent_registry_billing_sync_duration_seconds",
    "Time of one sync call to a billing channel (failures included).",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# The channels that sync, from the start at 0 for each status: a counter first seen at
# 1 shows no increase, so an alert would miss the first failure after a start.
SYNCING_CHANNELS = ("waldur", "stripe")
for _channel in SYNCING_CHANNELS:
    for _status in SYNC_STATUSES:
        BILLING_SYNC.labels(_channel, _status)


def sync_counted(channel: str, status: str) -> None:
    if status not in SYNC_STATUSES:
        raise ValueError(f"unknown billing sync status {status!r}")
    BILLING_SYNC.labels(channel, status).inc()


@contextmanager
def sync_timed(channel: str) -> Iterator[None]:
    began = perf_counter()
    try:
        yield
    finally:
        BILLING_SYNC_SECONDS.labels(channel).observe(perf_counter() - began)


# --- reconciliation, read at scrape time --------------------------------------------------

RECONCILE_JOB = "reconcile-usage"  # billing/jobs.py SCHEDULE


class ReconciliationCollector(Collector):
    """Differences the last reconcile-usage run found (its result, kept in core.JobStatus
    by whichever process ran it): anything above 0 is drift an operator must look at."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # without describe, registering would query the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from agent_registry.core.models import JobStatus

        row = JobStatus.objects.filter(name=RECONCILE_JOB, last_result__isnull=False).first()
        family = GaugeMetricFamily(
            "agent_registry_reconciliation_differences",
            "Differences between usage records, counters and summaries (and the billing "
            "channels' totals) that the last reconciliation found.",
        )
        if row is not None and row.last_result is not None:
            family.add_metric([], row.last_result)
        yield family
