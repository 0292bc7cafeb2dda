"""The usage benchmark, one run: ``python -m bench.usage`` (or ``make bench-usage``).

Loads N usage records of one month (default 10 million: 500 tenants, 2,000
subscriptions, 30 days) into a throwaway PostgreSQL database with ``COPY``, then times
the month's daily aggregation and the month's billing snapshot for every tenant against
one bare sequential scan of the same rows, the physical floor. Each timed job runs in a
process of its own, whose peak RSS is reported. Only 127.0.0.1 is contacted. See
bench/usage/README.md.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.console import only_run, phase, say, stop_on_signals
from bench.gateway.procs import loadavg, machine
from bench.usage.load import load

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TABLE = "usage_usagerecord"

TARGETS = {
    "load_rows_per_second": 200_000,  # loading >= 200,000 rows/s
    "aggregate_x_scan": 3.0,  # the month's daily aggregation <= 3 x the bare scan
    "snapshot_x_scan": 1.0,  # the month's snapshot for all tenants <= 1 x the bare scan
}


def previous_month() -> str:
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.usage", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="usage records to load")
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--subscriptions", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30, help="days of the month with traffic")
    parser.add_argument("--period", default=previous_month(), help="YYYY-MM (default: last month)")
    parser.add_argument(
        "--load-into",
        choices=("partition", "parent"),
        default="partition",
        help="partition: COPY into the month's table, then attach it (bulk path, default); "
        "parent: COPY through the partitioned parent, row by row (the gateway's path)",
    )
    parser.add_argument("--batch-rows", type=int, default=500_000, help="rows per transaction")
    parser.add_argument("--scans", type=int, default=3, help="measured bare scans (median)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default="agent_registry_bench_usage")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-usage")
    args = parser.parse_args()
    if not args.database.replace("_", "").isalnum():
        parser.error("--database: letters, digits and _ only")
    if "127.0.0.1" not in args.pg and "localhost" not in args.pg:
        parser.error(f"{args.pg}: the benchmark only talks to 127.0.0.1")
    year, month = (int(part) for part in args.period.split("-"))
    days_in_month = calendar.monthrange(year, month)[1]
    if not 1 <= args.days <= days_in_month:
        parser.error(f"--days: 1 to {days_in_month} in {args.period}")
    if args.rows < args.days:
        parser.error("--rows: at least one per day")
    return args


def child_env(args) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_DEBUG", "CELERY_BROKER_URL", "REDIS_URL", "IN_PROCESS_JOBS")
    }
    # DEBUG off: Django would otherwise keep every query in memory.
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "agent_registry.settings",
            "DATABASE_URL": f"{args.pg}/{args.database}",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_child(args, argv: list[str], *, timeout: float = 3600) -> str:
    done = subprocess.run(
        [PYTHON, *argv],
        cwd=ROOT,
        env=child_env(args),
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def job(args, name: str, *extra: str) -> dict:
    output = run_child(args, ["-m", "bench.usage.jobs", name, "--period", args.period, *extra])
    return json.loads(output.strip().splitlines()[-1])


def server(args) -> psycopg.Connection:
    return psycopg.connect(f"{args.pg}/postgres", autocommit=True)


def bench_db(args) -> psycopg.Connection:
    return psycopg.connect(f"{args.pg}/{args.database}", autocommit=True)


def fresh_database(args) -> dict[str, str]:
    with server(args) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
        names = (
            "server_version",
            "shared_buffers",
            "work_mem",
            "maintenance_work_mem",
            "max_parallel_workers_per_gather",
            "max_wal_size",
            "synchronous_commit",
        )
        return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in names}


class Progress:
    """``loaded 1,200,000 / 10,000,000 rows (12%)``: redrawn in place on a terminal,
    one line every 10% otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stdout.isatty()
        self.last_draw = 0.0
        self.next_tenth = 1

    def __call__(self, done: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0.0
        eta = (self.total - done) / rate if rate else 0.0
        line = (
            f"loaded {done:,} / {self.total:,} rows ({100 * done // self.total}%), "
            f"{rate:,.0f} rows/s, ETA {eta:.0f} s"
        )
        if self.tty:
            if time.monotonic() - self.last_draw >= 0.5 or done == self.total:
                self.last_draw = time.monotonic()
                print(f"\r          {line}   ", end="" if done < self.total else "\n", flush=True)
        elif done * 10 >= self.next_tenth * self.total:
            self.next_tenth = done * 10 // self.total + 1
            say(f"   {line}")


def prepare_standalone_month(args) -> None:
    """The month's table, not yet attached: COPY into it meets no index and no foreign-key
    trigger; attaching it afterwards builds the indexes by sorting and checks the foreign
    keys with one join each."""
    name = f"{TABLE}_p{args.period.replace('-', '_')}"
    with bench_db(args) as conn:
        conn.execute(
            f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE)"
        )
        # Ids from the parent's sequence, as if the rows had been inserted through it.
        conn.execute(
            f"ALTER TABLE {name} ALTER COLUMN id SET DEFAULT "
            f"nextval(pg_get_serial_sequence('{TABLE}', 'id'))"
        )


def load_phase(args, catalogue: dict) -> dict:
    name = f"{TABLE}_p{args.period.replace('-', '_')}"
    start = datetime.fromisoformat(f"{args.period}-01T00:00:00+00:00")
    url = f"{args.pg}/{args.database}"
    figures: dict = {"mode": args.load_into}
    if args.load_into == "partition":
        prepare_standalone_month(args)
        target = name
    else:
        say(f"   month partition: {job(args, 'ensure')['created']}")
        target = TABLE
    say(
        f"   COPY {args.rows:,} rows into {target}, {args.batch_rows:,} per transaction, "
        "synchronous_commit off for this session"
    )
    result = load(
        url,
        catalogue["subscriptions"],
        rows=args.rows,
        start=start,
        days=args.days,
        period=args.period,
        seed=args.seed,
        batch_rows=args.batch_rows,
        table=target,
        progress=Progress(args.rows),
    )
    figures.update(
        copy_seconds=result.seconds,
        copy_rows_per_second=result.rows / result.seconds,
        generator_cpu_seconds=result.generator_cpu_seconds,
    )
    say(
        f"   COPY: {result.rows:,} rows in {result.seconds:.1f} s = "
        f"{result.rows / result.seconds:,.0f} rows/s "
        f"(generator CPU {result.generator_cpu_seconds:.1f} s)"
    )
    attach_seconds = 0.0
    if args.load_into == "partition":
        with bench_db(args) as conn:
            conn.execute(f"ALTER TABLE {name} ALTER COLUMN id DROP DEFAULT")
        say(
            f"   attach {name}: builds 7 indexes, checks 4 foreign keys (maintenance_work_mem "
            "1GB); loading ends when the rows are queryable with every index and constraint"
        )
        attached = job(args, "attach")
        attach_seconds = attached["seconds"]
        say(f"   attached in {attach_seconds:.1f} s")
    total = result.seconds + attach_seconds
    figures.update(
        attach_seconds=attach_seconds,
        seconds=total,
        rows_per_second=result.rows / total,
    )
    return figures


def maintenance(args) -> dict:
    with bench_db(args) as conn:
        began = time.monotonic()
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        vacuum = time.monotonic() - began
        conn.execute("CHECKPOINT")
        partition = f"{TABLE}_p{args.period.replace('-', '_')}"
        heap, total = conn.execute(
            "SELECT pg_relation_size(%s), pg_total_relation_size(%s)", [partition, partition]
        ).fetchone()
        busiest = conn.execute(
            f"SELECT t.slug, count(*) FROM {TABLE} u JOIN tenants_agenttenant t "  # noqa: S608
            "ON t.id = u.tenant_id GROUP BY t.slug ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
    return {
        "vacuum_analyze_seconds": vacuum,
        "heap_bytes": heap,
        "total_bytes": total,
        "busiest_tenant": busiest[0],
        "busiest_tenant_rows": busiest[1],
    }


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def timed_jobs(args) -> dict:
    out: dict = {}
    with phase("bare sequential scan (the floor): one warm-up, then the median of the runs"):
        warm = job(args, "scan")
        say(f"   warm-up: {warm['seconds']:.2f} s, {warm['rows']:,} rows")
        scans = [job(args, "scan") for _ in range(args.scans)]
        serial = job(args, "scan-serial")
        out["scan"] = {
            "runs": [s["seconds"] for s in scans],
            "seconds": statistics.median(s["seconds"] for s in scans),
            "rows": scans[0]["rows"],
            "rss_peak_kib": max(s["rss_peak_kib"] for s in scans),
            "serial_seconds": serial["seconds"],
        }
        say(
            "   SELECT count(*), sum(tokens_total) of the month: "
            + ", ".join(f"{s:.2f}" for s in out["scan"]["runs"])
            + f" s (median {out['scan']['seconds']:.2f} s; without parallel workers "
            f"{serial['seconds']:.2f} s)"
        )
    with phase("references for the aggregation: the month grouped by day x subscription"):
        out["group_sums"] = job(args, "group-sums")
        out["group_read"] = job(args, "group-read")
        say(
            f"   plain sums only, no p95, nothing written: {out['group_sums']['seconds']:.2f} s"
            f" ({out['group_sums']['groups']:,} groups); the aggregation's own read (p95 "
            f"included, nothing written): {out['group_read']['seconds']:.2f} s"
        )
    with phase(f"daily aggregation of {args.period} (aggregate_range over every day)"):
        out["aggregate"] = job(args, "aggregate")
        say(
            f"   {out['aggregate']['days']} days, {out['aggregate']['records']:,} records -> "
            f"{out['aggregate']['rows']:,} summary rows in {out['aggregate']['seconds']:.2f} s, "
            f"peak RSS {mib(out['aggregate']['rss_peak_kib'])}"
        )
    with phase(f"billing snapshot of {args.period} for every tenant (refresh_cycle)"):
        out["snapshot"] = job(args, "snapshot")
        say(
            f"   {out['snapshot']['seconds']:.2f} s, peak RSS "
            f"{mib(out['snapshot']['rss_peak_kib'])}: {out['snapshot']['result']}"
        )
    with bench_db(args) as conn:
        calls = conn.execute(
            "SELECT coalesce(sum(total_api_calls), 0), count(*) FROM usage_tenantquotasnapshot "
            "WHERE billing_cycle_id = %s",
            [args.period],
        ).fetchone()
    out["snapshot"]["total_api_calls"], out["snapshot"]["snapshots"] = int(calls[0]), calls[1]
    return out


def report(args, loaded: dict, kept: dict, timed: dict) -> list[tuple[str, str, str]]:
    scan = timed["scan"]["seconds"]
    agg, snap = timed["aggregate"], timed["snapshot"]
    rows = timed["scan"]["rows"]
    print()
    lines = [
        (
            "loading (COPY + attach)" if loaded["mode"] == "partition" else "loading (COPY)",
            f"{args.rows:,} rows in {loaded['seconds']:.1f} s",
            f"{loaded['rows_per_second']:,.0f} rows/s",
        ),
        (
            "  of which COPY",
            f"{loaded['copy_seconds']:.1f} s",
            f"{loaded['copy_rows_per_second']:,.0f} rows/s",
        ),
        ("VACUUM ANALYZE (not timed below)", f"{kept['vacuum_analyze_seconds']:.1f} s", ""),
        (
            "bare scan of the month (floor)",
            f"{scan:.2f} s",
            f"{rows / scan:,.0f} rows/s; {kept['heap_bytes'] / 2**30:.2f} GiB heap",
        ),
        (
            "  reference: group by day, sums only",
            f"{timed['group_sums']['seconds']:.2f} s",
            f"{timed['group_sums']['seconds'] / scan:.2f} x scan (no p95, nothing written)",
        ),
        (
            "  reference: the aggregation's read",
            f"{timed['group_read']['seconds']:.2f} s",
            f"{timed['group_read']['seconds'] / scan:.2f} x scan (p95 included, no writes)",
        ),
        (
            "daily aggregation, whole month",
            f"{agg['seconds']:.2f} s",
            f"{agg['seconds'] / scan:.2f} x scan",
        ),
        (
            "snapshot, all tenants",
            f"{snap['seconds']:.2f} s",
            f"{snap['seconds'] / scan:.2f} x scan",
        ),
        ("peak RSS: scan job", mib(timed["scan"]["rss_peak_kib"]), ""),
        (
            "peak RSS: aggregation job",
            mib(agg["rss_peak_kib"]),
            f"(at start {mib(agg['rss_start_kib'])})",
        ),
        (
            "peak RSS: snapshot job",
            mib(snap["rss_peak_kib"]),
            f"(at start {mib(snap['rss_start_kib'])})",
        ),
    ]
    if loaded["mode"] == "partition":
        lines.insert(2, ("  of which attach", f"{loaded['attach_seconds']:.1f} s", ""))
    for name, value, extra in lines:
        print(f"  {name:<34} {value:>28}   {extra}")
    print()
    verdicts = [
        (
            f"loading >= {TARGETS['load_rows_per_second']:,} rows/s",
            "PASS" if loaded["rows_per_second"] >= TARGETS["load_rows_per_second"] else "MISS",
            f"{loaded['rows_per_second']:,.0f} rows/s",
        ),
        (
            f"daily aggregation <= {TARGETS['aggregate_x_scan']:g} x scan",
            "PASS" if agg["seconds"] <= TARGETS["aggregate_x_scan"] * scan else "MISS",
            f"{agg['seconds'] / scan:.2f} x",
        ),
        (
            f"snapshot for all tenants <= {TARGETS['snapshot_x_scan']:g} x scan",
            "PASS" if snap["seconds"] <= TARGETS["snapshot_x_scan"] * scan else "MISS",
            f"{snap['seconds'] / scan:.2f} x",
        ),
        (
            "aggregated records = loaded rows",
            "OK" if agg["records"] == args.rows == rows else "CHECK",
            f"{agg['records']:,} / {args.rows:,}",
        ),
        (
            "snapshot calls = loaded rows",
            "OK" if snap["total_api_calls"] == args.rows else "CHECK",
            f"{snap['total_api_calls']:,} in {snap['snapshots']} snapshots",
        ),
    ]
    for name, status, value in verdicts:
        print(f"  {status:<5} {name:<44} {value}")
    print()
    return verdicts


def main() -> int:
    args = parse_args()
    stop_on_signals()
    lock = only_run(args.out)
    if lock is None:
        print("another usage benchmark is running (same database)", file=sys.stderr)
        return 1
    facts = machine()
    say(
        f"usage benchmark: {args.rows:,} records, {args.tenants} tenants, "
        f"{args.subscriptions} subscriptions, {args.days} days of {args.period}"
    )
    for name, value in facts.items():
        say(f"  {name}: {value}")
    say("  note: the machine may be shared; other load skews the figures (see load averages)")
    summary: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": facts}
    try:
        with phase("fresh database, migrate, catalogue"):
            summary["postgresql"] = fresh_database(args)
            say(f"   PostgreSQL: {summary['postgresql']}")
            run_child(args, ["manage.py", "migrate", "--noinput", "--verbosity", "0"])
            catalogue_file = args.out / "catalogue.json"
            run_child(
                args,
                [
                    "-m",
                    "bench.usage.setup_data",
                    "--tenants",
                    str(args.tenants),
                    "--subscriptions",
                    str(args.subscriptions),
                    "--period",
                    args.period,
                    "--seed",
                    str(args.seed),
                    "--out",
                    str(catalogue_file),
                ],
            )
            catalogue = json.loads(catalogue_file.read_text())
            say(
                f"   {len(catalogue['tenant_slugs'])} customer tenants, "
                f"{len(catalogue['subscriptions'])} subscriptions (bulk_create)"
            )
        with phase(f"load ({args.load_into})"):
            loaded = load_phase(args, catalogue)
        with phase("VACUUM ANALYZE, CHECKPOINT (before anything is timed)"):
            kept = maintenance(args)
            say(
                f"   month partition: {kept['heap_bytes'] / 2**30:.2f} GiB heap, "
                f"{kept['total_bytes'] / 2**30:.2f} GiB with indexes"
            )
        timed = timed_jobs(args)
        verdicts = report(args, loaded, kept, timed)
        with phase(f"query plans (EXPLAIN ANALYZE) for tenant {kept['busiest_tenant']}"):
            plans = job(args, "explain", "--tenant", kept["busiest_tenant"])["plans"]
            for title, plan in plans.items():
                print(f"\n== {title}\n{plan}")
            print()
        summary.update(load=loaded, storage=kept, jobs=timed, verdicts=verdicts, plans=plans)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if not args.keep:
            with server(args) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            say(f"database {args.database} dropped (--keep keeps it)")
    summary["load_average_end"] = loadavg()
    name = f"usage-{args.rows}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    (args.out / name).write_text(json.dumps(summary, indent=2, default=str))
    say(f"figures saved to {(args.out / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
