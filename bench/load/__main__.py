"""The load test, one run: ``python -m bench.load`` (or ``make bench-load``).

The production setup on this machine: a throwaway PostgreSQL database, a Redis db of
its own, ``uvicorn agent_registry.asgi:application --workers 2`` with
``APP_ENV=production``; seeded through the services (setup_data.py). Then Locust,
headless, from its own venv (.venv-bench), drives the mix of locustfile.py with
``--users`` concurrent users for ``--duration`` seconds after the ramp. Reported:
requests, failures (0 apart from the intended 429s of the Trial plan), p50/p95/p99 per
endpoint, and every answered call against its usage record.

Only 127.0.0.1 is contacted. Every process started here is stopped on exit, Ctrl+C
included. See bench/load/README.md; the figures are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis

from bench.console import only_run, phase, say, stop_on_signals
from bench.gateway.procs import (
    Processes,
    cpu_seconds,
    free_port,
    loadavg,
    machine,
    raise_fd_limit,
    wait_http,
)

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
INTENDED_429 = "429 rate_limited on the Trial plan (intended)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--users", type=int, default=1000, help="concurrent Locust users")
    parser.add_argument("--spawn-rate", type=float, default=100.0, help="users started per second")
    parser.add_argument(
        "--duration", type=float, default=65.0, help="seconds at full load, after the ramp"
    )
    parser.add_argument("--processes", type=int, default=2, help="Locust worker processes")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn --workers")
    parser.add_argument("--wait-min", type=float, default=2.0, help="think time, seconds")
    parser.add_argument("--wait-max", type=float, default=6.0, help="think time, seconds")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--log-level", default="INFO", help="the registry's LOG_LEVEL")
    parser.add_argument(
        "--db-pool",
        type=int,
        default=10,
        help="DB_POOL_MAX_SIZE: PostgreSQL connections per uvicorn worker (0: no pool)",
    )
    parser.add_argument("--database", default="agent_registry_load")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10", help="flushed at start")
    parser.add_argument("--locust", default=str(ROOT / ".venv-bench" / "bin" / "locust"))
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-load")
    args = parser.parse_args()
    if not args.database.replace("_", "").isalnum():
        parser.error("--database: letters, digits and _ only")
    for url in (args.pg, args.redis):
        if "127.0.0.1" not in url and "localhost" not in url:
            parser.error(f"{url}: the load test only talks to 127.0.0.1")
    if not Path(args.locust).exists():
        parser.error(f"{args.locust} missing: `make bench-load` installs it (.venv-bench)")
    return args


def registry_env(args) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_DEBUG", "CELERY_BROKER_URL", "VIRTUAL_ENV_PROMPT", "IN_PROCESS_JOBS")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "agent_registry.settings",
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "API_KEY_PEPPER": secrets.token_urlsafe(32),
            "METRICS_TOKEN": secrets.token_urlsafe(32),
            "RUNTIME_SECRETS_KEYS": _fernet_key(),
            "DATABASE_URL": f"{args.pg}/{args.database}",
            "REDIS_URL": args.redis,
            "LOG_LEVEL": args.log_level,
            "DB_POOL_MAX_SIZE": str(args.db_pool),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def fresh_services(args) -> dict[str, str]:
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    redis_version = client.info("server")["redis_version"]
    client.close()
    return {"postgresql": pg_version, "redis": redis_version}


def usage_counts(args) -> dict[str, int]:
    """Usage records by (endpoint, streamed, status class), and their total."""
    with psycopg.connect(f"{args.pg}/{args.database}", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT endpoint, streamed, response_status, count(*) FROM usage_usagerecord "
            "GROUP BY 1, 2, 3"
        ).fetchall()
    counts: dict[str, int] = {}
    for endpoint, streamed, status, count in rows:
        key = f"{endpoint}{' (stream)' if streamed else ''} {status}"
        counts[key] = counts.get(key, 0) + count
    return counts


def settled_usage(args, timeout: float = 60.0, quiet: float = 5.0) -> dict[str, int]:
    """The counts once the group-committed writers have flushed: unchanged for ``quiet``
    seconds. On a starved machine a writer can pause for seconds (the first 1,000-user
    run read the counts 0.5 s after a change and found 85 records still to come)."""
    deadline = time.monotonic() + timeout
    last, since = usage_counts(args), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = usage_counts(args)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def answered_files(args, timeout: float = 60.0) -> list[Path]:
    """Each Locust worker's count of answered calls. The master may exit before its
    workers have written theirs, so wait for one file per worker process."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(args.out.glob("answered-*.json"))
        if len(files) >= args.processes or time.monotonic() > deadline:
            return files
        time.sleep(0.5)


def pg_connections(args) -> int:
    """Server connections to the load test's database (the registry's, and this one)."""
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [args.database]
        ).fetchone()
    return int(row[0])


def pg_max_connections(args) -> str:
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        return str(conn.execute("SHOW max_connections").fetchone()[0])


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids.extend(process_tree(int(child)))
    return pids


def tree_cpu(pid: int) -> float:
    total = 0.0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):  # a process that ended in between
            total += cpu_seconds(each)
    return total


def read_stats(prefix: Path) -> tuple[list[dict], list[dict]]:
    with open(f"{prefix}_stats.csv", encoding="utf-8") as stats:
        rows = list(csv.DictReader(stats))
    with open(f"{prefix}_failures.csv", encoding="utf-8") as failures:
        errors = list(csv.DictReader(failures))
    return rows, errors


def report(args, rows: list[dict], errors: list[dict], usage: dict[str, int], extra: dict) -> dict:
    intended = {
        row["Name"]: int(row["Occurrences"]) for row in errors if INTENDED_429 in row["Error"]
    }
    unintended = [row for row in errors if INTENDED_429 not in row["Error"]]
    print()
    print(
        f"{'endpoint':<46} {'requests':>9} {'req/s':>7} {'fail':>6} {'429 int.':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>8}"
    )
    print("-" * 116)
    figures = []
    for row in rows:
        name = row["Name"] if row["Name"] != "Aggregated" else "all"
        requests = int(row["Request Count"])
        failures = int(row["Failure Count"])
        expected_429 = intended.get(row["Name"], 0)
        if row["Name"] == "Aggregated":
            expected_429 = sum(intended.values())
        figure = {
            "name": name,
            "requests": requests,
            "rps": float(row["Requests/s"]),
            "failures": failures - expected_429,
            "intended_429": expected_429,
            "p50_ms": float(row["50%"]),
            "p95_ms": float(row["95%"]),
            "p99_ms": float(row["99%"]),
            "max_ms": float(row["Max Response Time"]),
        }
        figures.append(figure)
        print(
            f"{name:<46} {requests:>9,} {figure['rps']:>7.1f} {figure['failures']:>6} "
            f"{expected_429:>8} {figure['p50_ms']:>7.0f} {figure['p95_ms']:>7.0f} "
            f"{figure['p99_ms']:>7.0f} {figure['max_ms']:>8.0f}"
        )
    print()
    if unintended:
        say("failures other than the intended 429s:")
        for row in unintended:
            say(f"  {row['Occurrences']:>6} x {row['Name']}: {row['Error'][:160]}")
    # Every answered call (a 200 to the client) has its usage record, per endpoint kind,
    # as each Locust process counted them (locustfile.py ANSWERED).
    answered: dict[str, int] = {}
    files = answered_files(args)
    if len(files) < args.processes:
        say(f"only {len(files)} of {args.processes} Locust workers wrote their counts")
    for path in files:
        for key, count in json.loads(path.read_text()).items():
            answered[key] = answered.get(key, 0) + count
    say("answered calls (client 200s) against usage records with status 200:")
    checks = []
    for key in sorted(set(answered) | {k for k in usage if k.endswith(" 200")}):
        client, records = answered.get(key, 0), usage.get(key, 0)
        checks.append({"kind": key, "client_200": client, "records_200": records})
        mark = "OK   " if client == records else "CHECK"
        say(f"  {mark} {key:<28} client {client:>8,}  records {records:>8,}")
    other = {k: v for k, v in usage.items() if not k.endswith(" 200")}
    if other:
        say(f"  records with another status: {other}")
    total_unintended = sum(int(row["Occurrences"]) for row in unintended)
    # A task that raised is a failure too, even if Locust reported no request for it.
    with open(args.out / "locust_exceptions.csv", encoding="utf-8") as exceptions_csv:
        exceptions = [row for row in csv.DictReader(exceptions_csv) if row.get("Count")]
    for row in exceptions:
        say(f"  task exception x {row['Count']}: {row['Message'][:160]}")
    total_unintended += sum(int(row["Count"]) for row in exceptions)
    verdicts = {
        "no failures but the intended 429s": total_unintended == 0,
        "every answered call has its usage record": all(
            c["client_200"] == c["records_200"] for c in checks
        ),
    }
    for name, ok in verdicts.items():
        say(f"{'PASS' if ok else 'FAIL'}  {name}")
    return {
        "endpoints": figures,
        "usage": checks,
        "unintended_failures": unintended,
        "verdicts": verdicts,
        **extra,
    }


def main() -> int:
    args = parse_args()
    stop_on_signals()
    lock = only_run(args.out)
    if lock is None:
        say(f"another load test holds {args.out}/.lock; one at a time")
        return 2
    limit = raise_fd_limit(max(4 * args.users + 2000, 8192))
    facts = machine()
    say("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    say(f"fd limit (soft) {limit}, inherited by uvicorn and Locust")
    procs = Processes(args.out)
    env = registry_env(args)
    try:
        with phase("services: fresh database, Redis db, migrate, seed"):
            versions = fresh_services(args)
            say(f"PostgreSQL {versions['postgresql']}: {args.database} dropped and recreated")
            say(f"Redis {versions['redis']}: {args.redis} flushed")
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=600,
            )
            data_file = args.out / "data.json"
            slots = args.users + 16 * args.processes
            subprocess.run(
                [
                    PYTHON,
                    "-m",
                    "bench.load.setup_data",
                    "--out",
                    str(data_file),
                    "--customers",
                    str(args.customers),
                    "--slots",
                    str(slots),
                ],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=900,
            )
            data = json.loads(data_file.read_text())
            say(
                f"{len(data['agents'])} echo agents (Free, Metered, Trial plans), "
                f"{len(data['customers'])} customer tenants, {slots} user projects"
            )
        with phase(f"registry: uvicorn --workers {args.web_workers}, APP_ENV=production"):
            port = free_port()
            web = procs.start(
                "web",
                [
                    PYTHON,
                    "-m",
                    "uvicorn",
                    "agent_registry.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(args.web_workers),
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--backlog",
                    "4096",
                    # As in production (Dockerfile): longer than any client's idle time.
                    "--timeout-keep-alive",
                    "75",
                ],
                env=env,
                cwd=ROOT,
            )
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/health/ready", web, timeout=60)
            say(f"registry on {base} (pid {web.pid}), LOG_LEVEL={args.log_level}")
        ramp = args.users / args.spawn_rate
        run_time = int(ramp + args.duration + 0.999)
        with phase(
            f"load: {args.users} users (+{args.spawn_rate:g}/s, {ramp:.0f} s ramp), "
            f"{run_time} s in all, {args.processes} Locust processes, think time "
            f"{args.wait_min:g}-{args.wait_max:g} s"
        ):
            before = settled_usage(args)
            if before:
                raise RuntimeError(f"usage records before the run: {before}")
            load_before = loadavg()
            web_cpu, started = tree_cpu(web.pid), time.monotonic()
            locust_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO")},
                "LOAD_DATA": str(data_file),
                "LOAD_COUNTS": str(args.out),
                "LOAD_PROCESSES": str(args.processes),
                "LOAD_WAIT_MIN": str(args.wait_min),
                "LOAD_WAIT_MAX": str(args.wait_max),
            }
            prefix = args.out / "locust"
            for stale in args.out.glob("answered-*.json"):
                stale.unlink()
            locust = procs.start(
                "locust",
                [
                    args.locust,
                    "-f",
                    str(ROOT / "bench" / "load" / "locustfile.py"),
                    "--headless",
                    "--users",
                    str(args.users),
                    "--spawn-rate",
                    str(args.spawn_rate),
                    "--run-time",
                    f"{run_time}s",
                    "--processes",
                    str(args.processes),
                    "--host",
                    base,
                    "--csv",
                    str(prefix),
                    "--stop-timeout",
                    "60",
                    "--only-summary",
                    "--loglevel",
                    "WARNING",
                    "--exit-code-on-error",
                    "0",
                ],
                env=locust_env,
                cwd=ROOT,
            )
            samples, connections = [], []
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            while locust.poll() is None:
                time.sleep(5)
                samples.append(loadavg())
                connections.append(pg_connections(args))
                if web.poll() is not None:
                    raise RuntimeError(f"uvicorn exited:\n{procs.log_tail('web')}")
            wall = time.monotonic() - started
            web_cpu = tree_cpu(web.pid) - web_cpu
            # Locust (master and workers) is the only child reaped in this window.
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            locust_cpu = (children_after.ru_utime + children_after.ru_stime) - (
                children_before.ru_utime + children_before.ru_stime
            )
            load_after = loadavg()
            say(
                f"PostgreSQL connections to {args.database}, every 5 s: "
                f"{' '.join(map(str, connections))} (peak {max(connections, default=0)}; "
                f"server max_connections {pg_max_connections(args)})"
            )
            say(
                f"Locust exited {locust.returncode} after {wall:.0f} s; registry CPU "
                f"{web_cpu:.0f} s ({100 * web_cpu / wall:.0f}% of one core), Locust CPU "
                f"{locust_cpu:.0f} s ({100 * locust_cpu / wall:.0f}%); load average "
                f"{load_before} -> {load_after}"
            )
            if locust.returncode not in (0, 1):
                say(procs.log_tail("locust", 40))
                return 1
        usage = settled_usage(args)
        rows, errors = read_stats(prefix)
        outcome = report(
            args,
            rows,
            errors,
            usage,
            {
                "machine": facts,
                "versions": versions,
                "users": args.users,
                "spawn_rate": args.spawn_rate,
                "run_time_s": run_time,
                "processes": args.processes,
                "web_workers": args.web_workers,
                "think_time_s": [args.wait_min, args.wait_max],
                "registry_cpu_s": round(web_cpu, 1),
                "locust_cpu_s": round(locust_cpu, 1),
                "db_pool_max_size": args.db_pool,
                "wall_s": round(wall, 1),
                "loadavg": {"before": load_before, "during": samples, "after": load_after},
                "usage_records": usage,
                "pg_connections": connections,
            },
        )
        (args.out / "summary.json").write_text(json.dumps(outcome, indent=2))
        data_file.unlink()  # the (throwaway) keys and tokens
        say(f"summary: {args.out / 'summary.json'}; logs: {args.out}/*.log")
        return 0 if all(outcome["verdicts"].values()) else 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        procs.stop_all()
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
