"""One timed job of the usage benchmark, in a process of its own, so its peak RSS is its own.

    python -m bench.usage.jobs {scan,scan-serial,aggregate,snapshot,ensure,attach,explain} \
        --period YYYY-MM [--tenant SLUG]

Run with ``DATABASE_URL`` pointing at the bench database (``__main__.py`` does). Prints
progress on stderr and, as its last stdout line, JSON: ``seconds`` (wall time of the
job alone, after Django's set-up), ``rss_start_kib`` (resident set before the job) and
``rss_peak_kib`` (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the process's peak).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import date, timedelta

import django

JOBS = (
    "scan",
    "scan-serial",
    "group-sums",
    "group-read",
    "aggregate",
    "snapshot",
    "ensure",
    "attach",
    "explain",
)

# The reference for the aggregation: the month's records grouped by UTC day x
# subscription with plain sums only (no p95, nothing written back), into a temporary
# table so that every aggregate is really computed (a count over a subquery would let
# PostgreSQL skip them). Same work_mem as the aggregation.
GROUP_SUMS_SQL = """
CREATE TEMP TABLE bench_group_sums AS
SELECT date_bin('1 day', created_at, %(start)s) AS day, access_id, count(*) AS calls,
       sum(tokens_input) AS tokens_input, sum(tokens_output) AS tokens_output,
       sum(response_time_ms) AS latency_sum
FROM usage_usagerecord
WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1, 2
"""


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.usage.jobs")
    parser.add_argument("job", choices=JOBS)
    parser.add_argument("--period", required=True)
    parser.add_argument("--tenant", help="explain: the tenant whose records are listed")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")
    django.setup()

    from django.db import connection

    from agent_registry.core import periods
    from agent_registry.usage import partitions

    start = periods.period_start(args.period)
    end = periods.next_month_start(start)
    first_day, after = periods.period_dates(args.period)
    with connection.cursor() as cursor:  # connect before the clock starts
        cursor.execute("SELECT 1")
    rss_start = rss_kib()
    began = time.monotonic()
    detail: dict = {}

    if args.job in ("scan", "scan-serial"):
        with connection.cursor() as cursor:
            if args.job == "scan-serial":
                cursor.execute("SET max_parallel_workers_per_gather = 0")
            cursor.execute(
                "SELECT count(*), sum(tokens_total) FROM usage_usagerecord "
                "WHERE created_at >= %s AND created_at < %s",
                [start, end],
            )
            rows, tokens = cursor.fetchone()
        detail = {"rows": rows, "tokens": int(tokens or 0)}
    elif args.job in ("group-sums", "group-read"):
        detail = {"groups": group_reference(args.job, start, end)}
    elif args.job == "aggregate":
        from agent_registry.usage.aggregation import aggregate_range

        def progress(done: int, total: int, day: date, result) -> None:
            print(
                f"      aggregated {day.isoformat()} ({done}/{total}): {result.records:,} "
                f"records -> {result.rows} rows  [{time.monotonic() - began:.1f} s]",
                file=sys.stderr,
                flush=True,
            )

        result = aggregate_range(first_day, after - timedelta(days=1), progress=progress)
        detail = {"days": result.days, "rows": result.rows, "records": result.records}
    elif args.job == "snapshot":
        from agent_registry.billing.cycles import refresh_cycle

        result = refresh_cycle(args.period)
        detail = {"result": repr(result)[:300]}
    elif args.job == "ensure":
        detail = {"created": partitions.ensure_partitions(months_ahead=0, now=start)}
    elif args.job == "attach":
        with connection.cursor() as cursor:
            # Index builds are sorts: give them memory (session only).
            cursor.execute("SET maintenance_work_mem = '1GB'")
        detail = {"attached": partitions.attach_partition(args.period)}
    elif args.job == "explain":
        detail = {"plans": explain(args.period, args.tenant)}

    seconds = time.monotonic() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "job": args.job,
                "seconds": seconds,
                "rss_start_kib": rss_start,
                "rss_peak_kib": peak,
                **detail,
            }
        )
    )


def group_reference(job: str, start, end) -> int:
    """``group-sums``: GROUP_SUMS_SQL. ``group-read``: the aggregation's own read of the
    month (its groups, p95 included, into its temporary table) without the writes of
    the summaries. Returns the number of groups."""
    from django.conf import settings
    from django.db import connection, transaction

    from agent_registry.usage.aggregation import P95, postgresql

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('work_mem', %s, true)", [settings.USAGE_AGGREGATION_WORK_MEM]
        )
        params = {"start": start, "end": end, "p95": P95}
        if job == "group-sums":
            cursor.execute(GROUP_SUMS_SQL, params)
        else:
            postgresql.create_groups_table(cursor, postgresql.DAY_GROUPS, on_commit="DROP")
            cursor.execute(postgresql.GROUPS_SQL.format(**postgresql.tables()), params)
        return cursor.rowcount


def explain(period: str, tenant_slug: str | None) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the three queries docs/usage-storage.md shows."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from agent_registry.core import periods
    from agent_registry.usage import aggregation, selectors
    from agent_registry.usage.aggregation import postgresql

    first_day, after = periods.period_dates(period)
    start, _ = aggregation.day_bounds(first_day)
    end, _ = aggregation.day_bounds(after)
    plans = {}
    # The aggregation's one read of the records: the month's groups, as aggregate_range
    # computes them before writing each day; rolled back (EXPLAIN ANALYZE runs it).
    sql = postgresql.GROUPS_SQL.format(**postgresql.tables())
    with transaction.atomic(), connection.cursor() as cursor:
        postgresql.create_groups_table(cursor, postgresql.DAY_GROUPS, on_commit="DROP")
        cursor.execute(
            "SELECT set_config('work_mem', %s, true)", [settings.USAGE_AGGREGATION_WORK_MEM]
        )
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + sql,
            {"start": start, "end": end, "p95": aggregation.P95},
        )
        plans[f"daily aggregation of {period}: the month's groups in one pass"] = "\n".join(
            r[0] for r in cursor
        )
        transaction.set_rollback(True)

    operator = User(username="bench", is_staff=True)  # never saved: an operator's view
    visible = selectors.usage_records_visible_to(operator)
    year, month = (int(part) for part in period.split("-"))
    listing = selectors.created_between(
        visible.filter(tenant__slug=tenant_slug),
        selectors.day_start(first_day + timedelta(days=9)),
        selectors.day_end(first_day + timedelta(days=15)),
    ).order_by("-created_at", "-id")[:50]
    plans[
        f"records API: tenant {tenant_slug}, {first_day + timedelta(days=9)} to "
        f"{first_day + timedelta(days=15)}, first page of 50"
    ] = listing.explain(analyze=True, buffers=True)
    export = selectors.created_between(
        visible.filter(tenant__slug=tenant_slug), *selectors.month_bounds(year, month)
    ).order_by("created_at", "id")
    plans[f"CSV export: tenant {tenant_slug}, {period}"] = export.explain(
        analyze=True, buffers=True
    )
    return plans


if __name__ == "__main__":
    main()
