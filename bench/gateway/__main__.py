"""The gateway benchmark, one run: ``python -m bench.gateway [--soak]`` (or ``make bench-gateway``).

Throughput mode (default): a fast upstream on loopback; the gateway in production
mode (PostgreSQL, Redis, one uvicorn worker; keys, limits, quota and usage records
all on); for each concurrency, wrk (a) straight to the upstream and (b) through the
gateway, then the two reference floors of floors.py (an empty ASGI app and a bare
aiohttp proxy on the same uvicorn); then the figures against the issue's targets.
Soak mode (``--soak``): 1,000 streams held open through the gateway against a slow
upstream; memory per connection.

Only 127.0.0.1 is contacted. Every process started here is stopped on exit, Ctrl+C
included. See bench/gateway/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import redis
import uvloop

from bench.console import only_run, phase, say, stop_on_signals
from bench.gateway import wrk
from bench.gateway.procs import (
    Processes,
    cpu_seconds,
    free_port,
    loadavg,
    machine,
    raise_fd_limit,
    rss_kib,
    wait_http,
    wait_port,
)

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

TARGETS = {
    "ratio_c64": 0.10,  # gateway throughput at c=64 ≥ 10 % of direct
    "added_p50_c1_ms": 1.0,  # added p50 at c=1 < 1 ms
    "added_p99_c16_ms": 5.0,  # added p99 at c=16 < 5 ms
}


def _where(cpu: int | None) -> str:
    return "any" if cpu is None else str(cpu)


def _cpu(value: str) -> int | None:
    return None if value.lower() in ("", "none", "-") else int(value)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--soak", action="store_true", help="run the streaming soak instead")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured warm-up")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated")
    parser.add_argument("--streams", type=int, default=1000, help="soak: concurrent streams")
    parser.add_argument("--pieces", type=int, default=30, help="soak: pieces per stream")
    parser.add_argument("--interval", type=float, default=1.0, help="soak: seconds per piece")
    parser.add_argument("--database", default="agent_registry_bench")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11", help="flushed at start")
    parser.add_argument("--upstream-cpu", type=_cpu, default=1, help="'none' to float")
    parser.add_argument("--wrk-cpu", type=_cpu, default=0, help="'none' to float")
    parser.add_argument("--gateway-cpu", type=_cpu, default=None, help="default: floats")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench-gateway")
    parser.add_argument(
        "--no-floors", action="store_true", help="skip the reference floors (empty app, proxy)"
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.database.replace("_", "").isalnum():
        parser.error("--database: letters, digits and _ only")
    for url in (args.pg, args.redis):
        if "127.0.0.1" not in url and "localhost" not in url:
            parser.error(f"{url}: the benchmark only talks to 127.0.0.1")
    return args


# --- services ---------------------------------------------------------------------------


def fresh_database(args) -> str:
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
        version = conn.execute("SHOW server_version").fetchone()[0]
    return version


def flush_redis(url: str) -> str:
    client = redis.Redis.from_url(url)
    client.flushdb()
    version = client.info("server")["redis_version"]
    client.close()
    return version


def gateway_env(args) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_DEBUG", "CELERY_BROKER_URL", "VIRTUAL_ENV_PROMPT")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "agent_registry.settings",
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "API_KEY_PEPPER": secrets.token_urlsafe(32),
            "DATABASE_URL": f"{args.pg}/{args.database}",
            "REDIS_URL": args.redis,
            "RUNTIME_ALLOW_PRIVATE_NETWORKS": "true",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class UsageDb:
    """Counts in the bench database, for the sanity check against wrk's 2xx."""

    def __init__(self, args) -> None:
        self.conn = psycopg.connect(f"{args.pg}/{args.database}", autocommit=True)

    def counts(self, agent_id: str) -> dict[str, int]:
        row = self.conn.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE u.response_status = 200),
                   (SELECT coalesce(sum(a.total_requests), 0) FROM access_agentaccess a
                     JOIN agents_agentinstance i2 ON i2.id = a.agent_instance_id
                    WHERE i2.agent_id = %(agent)s)
              FROM usage_usagerecord u
              JOIN agents_agentinstance i ON i.id = u.agent_instance_id
             WHERE i.agent_id = %(agent)s
            """,
            {"agent": agent_id},
        ).fetchone()
        return {"records": row[0], "records_200": row[1], "total_requests": int(row[2])}

    def settled(self, agent_id: str, timeout: float = 5.0) -> dict[str, int]:
        """Counts once in-flight calls (still running when wrk stopped) are written."""
        deadline = time.monotonic() + timeout
        last = self.counts(agent_id)
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.counts(agent_id)
            if now == last:
                return now
            last = now
        return last

    def close(self) -> None:
        self.conn.close()


def start_stack(args, procs: Processes, *, soak: bool) -> dict:
    env = gateway_env(args)
    with phase("services: fresh database, Redis db, migrate, data"):
        pg_version = fresh_database(args)
        redis_version = flush_redis(args.redis)
        say(f"PostgreSQL {pg_version}: database {args.database} dropped and recreated")
        say(f"Redis {redis_version}: {args.redis} flushed (the bench's own db)")
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=300,
        )
        upstream_port = free_port()
        upstream_args = ["--pieces", str(args.pieces), "--interval", str(args.interval)]
        upstream = procs.start(
            "upstream",
            [PYTHON, "-m", "bench.gateway.upstream", "--port", str(upstream_port), *upstream_args],
            env=env,
            cwd=ROOT,
            cpu=args.upstream_cpu,
        )
        wait_port(upstream_port, upstream)
        keys_file = args.out / "keys.json"
        subprocess.run(
            [
                PYTHON,
                "-m",
                "bench.gateway.setup_data",
                "--upstream",
                f"http://127.0.0.1:{upstream_port}",
                "--out",
                str(keys_file),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
        keys = json.loads(keys_file.read_text())
        keys_file.unlink()
        say(
            f"upstream on 127.0.0.1:{upstream_port} (pid {upstream.pid}, cpu "
            f"{_where(args.upstream_cpu)}); agents "
            f"{keys['http']['agent_id']} (http runtime), {keys['stream']['agent_id']} "
            "(openai runtime, streaming)"
        )

    with phase("gateway: uvicorn, 1 worker, uvloop, httptools, APP_ENV=production"):
        gateway, base = start_uvicorn(
            procs, "gateway", "agent_registry.asgi:application", env, cpu=args.gateway_cpu
        )
        wait_http(f"{base}/health/live", gateway)
        say(
            f"gateway on {base} (pid {gateway.pid}); PostgreSQL + Redis limits, usage records; "
            "LOG_LEVEL=WARNING: the one JSON log line per call is off, it would dominate"
        )
        agent = keys["stream" if soak else "http"]
        body = {"input": "hello"} if not soak else {"input": "check pieces=1 interval=0"}
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{base}/api/v1/agents/{agent['agent_id']}/invoke",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-API-Key": agent["api_key"]},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer = json.loads(response.read())
        say(f"one call through the gateway: 200, output {answer['output']!r}")
    return {
        "base": base,
        "gateway": gateway,
        "upstream": upstream,
        "upstream_port": upstream_port,
        "keys": keys,
        "versions": {"postgresql": pg_version, "redis": redis_version},
    }


def start_uvicorn(
    procs: Processes, name: str, app: str, env: dict[str, str], *, cpu: int | None
) -> tuple[subprocess.Popen, str]:
    """``app`` under uvicorn exactly as the gateway runs: one worker, uvloop, httptools."""
    port = free_port()
    process = procs.start(
        name,
        [
            PYTHON,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        cpu=cpu,
    )
    return process, f"http://127.0.0.1:{port}"


def start_floors(args, procs: Processes, upstream_url: str) -> dict[str, str]:
    """The reference floors (floors.py), or nothing with --no-floors."""
    if args.no_floors:
        return {}
    env = {**gateway_env(args), "FLOOR_UPSTREAM": upstream_url}
    urls = {}
    with phase("reference floors: an empty ASGI app and a bare aiohttp proxy, same uvicorn"):
        for name in ("empty", "proxy"):
            process, base = start_uvicorn(
                procs, f"floor-{name}", f"bench.gateway.floors:{name}", env, cpu=args.gateway_cpu
            )
            wait_port(int(base.rsplit(":", 1)[1]), process)
            urls[name] = f"{base}/run"
    return urls


def measure_floors(args, procs: Processes, runs: list[dict], direct_url: str, script: Path) -> None:
    """After the gateway's runs (so nothing else is running then): each floor at each
    concurrency, against the same direct baseline as the gateway."""
    floors = start_floors(args, procs, direct_url)
    for name, url in floors.items():
        wrk.run(url, script, connections=16, seconds=args.warmup, cpu=args.wrk_cpu)
        for run in runs:
            connections = run["connections"]
            floor = wrk.run(
                url, script, connections=connections, seconds=args.duration, cpu=args.wrk_cpu
            )
            say(
                f"floor: {name:<5} c={connections:<3} {describe(floor)}  "
                f"[{floor.rps / run['direct']['rps']:.1%} of direct]"
            )
            run.setdefault("floors", {})[name] = _figures(floor)


# --- throughput -----------------------------------------------------------------------


def measured(pid: int, action):
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    result = action()
    cpu = cpu_seconds(pid) - cpu_before
    return result, cpu, time.monotonic() - wall_before


def describe(result: wrk.WrkResult) -> str:
    errors = result.errors
    detail = ""
    if errors:
        socket_errors = {k: v for k, v in result.socket_errors.items() if v}
        detail = f" (non-2xx {result.non_2xx} {result.error_codes}, socket {socket_errors})"
    return (
        f"{result.rps:9,.0f} req/s  p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms  "
        f"max {result.max_ms:8.2f} ms  errors {errors}{detail}"
    )


def throughput(args, procs: Processes) -> dict:
    wrk.require_wrk()
    stack = start_stack(args, procs, soak=False)
    agent = stack["keys"]["http"]
    scripts = args.out
    direct_script = wrk.write_script(
        scripts / "direct.lua", {"input": "hello", "session_id": "bench", "variables": {}}, {}
    )
    gateway_script = wrk.write_script(
        scripts / "gateway.lua",
        {"input": "hello"},
        {"X-API-Key": agent["api_key"]},
        count_errors=True,
    )
    direct_url = f"http://127.0.0.1:{stack['upstream_port']}/run"
    gateway_url = f"{stack['base']}/api/v1/agents/{agent['agent_id']}/invoke"
    gateway_pid, upstream_pid = stack["gateway"].pid, stack["upstream"].pid
    say(
        f"pinning: upstream cpu {_where(args.upstream_cpu)}, wrk cpu {_where(args.wrk_cpu)}, "
        f"gateway cpu {_where(args.gateway_cpu)}; PostgreSQL and Redis float"
    )
    say(
        f"wrk -t1 (c<4) or -t2, -d{args.duration:g}s --latency --timeout 10s, a Lua script "
        "for the POST body and X-API-Key"
    )
    db = UsageDb(args)
    runs: list[dict] = []
    try:
        with phase(f"warm-up: {args.warmup:g} s each, c=16, not measured"):
            wrk.run(
                direct_url, direct_script, connections=16, seconds=args.warmup, cpu=args.wrk_cpu
            )
            wrk.run(
                gateway_url, gateway_script, connections=16, seconds=args.warmup, cpu=args.wrk_cpu
            )
            say(f"gateway RSS after warm-up: {rss_kib(gateway_pid) / 1024:.1f} MiB")
        for connections in args.concurrency:
            with phase(f"concurrency {connections}: (a) direct, then (b) through the gateway"):
                procs.check_alive()
                direct, up_cpu, wall = measured(
                    upstream_pid,
                    lambda c=connections: wrk.run(
                        direct_url,
                        direct_script,
                        connections=c,
                        seconds=args.duration,
                        cpu=args.wrk_cpu,
                    ),
                )
                say(
                    f"(a) direct  c={connections:<3} {describe(direct)}  "
                    f"[upstream CPU {100 * up_cpu / wall:.0f}%]"
                )
                before = db.settled(agent["agent_id"])
                via, gw_cpu, wall = measured(
                    gateway_pid,
                    lambda c=connections: wrk.run(
                        gateway_url,
                        gateway_script,
                        connections=c,
                        seconds=args.duration,
                        cpu=args.wrk_cpu,
                    ),
                )
                after = db.settled(agent["agent_id"])
                procs.check_alive()
                if via.errors:
                    say(f"    gateway log, last lines:\n{procs.log_tail('gateway', 10)}")
                new_records = after["records"] - before["records"]
                cpu_per_call = 1e6 * gw_cpu / max(via.requests, 1)
                say(
                    f"(b) gateway c={connections:<3} {describe(via)}  [gateway CPU "
                    f"{100 * gw_cpu / wall:.0f}%, {cpu_per_call:,.0f} µs CPU/call]"
                )
                say(
                    f"    added p50 {via.p50_ms - direct.p50_ms:+.3f} ms, p99 "
                    f"{via.p99_ms - direct.p99_ms:+.3f} ms; b/a throughput "
                    f"{via.rps / direct.rps:.1%}; usage records +{new_records} vs wrk 2xx "
                    f"{via.ok} (calls in flight when wrk stops are recorded but not counted "
                    f"by wrk: up to {connections})"
                )
                runs.append(
                    {
                        "connections": connections,
                        "direct": _figures(direct),
                        "gateway": _figures(via),
                        "added_p50_ms": round(via.p50_ms - direct.p50_ms, 3),
                        "added_p99_ms": round(via.p99_ms - direct.p99_ms, 3),
                        "ratio": round(via.rps / direct.rps, 4),
                        "gateway_cpu_percent": round(100 * gw_cpu / wall, 1),
                        "gateway_cpu_us_per_call": round(cpu_per_call, 1),
                        "upstream_cpu_percent": round(100 * up_cpu / wall, 1),
                        "usage_records": new_records,
                        "usage_records_200": after["records_200"] - before["records_200"],
                        "wrk_2xx": via.ok,
                    }
                )
        totals = db.settled(agent["agent_id"])
        measure_floors(args, procs, runs, direct_url, direct_script)
    finally:
        db.close()
        gateway_script.unlink(missing_ok=True)  # it holds the (bench-only) API key
    rss = rss_kib(gateway_pid)
    return {"runs": runs, "totals": totals, "gateway_rss_mib": round(rss / 1024, 1), **stack}


def _figures(result: wrk.WrkResult) -> dict:
    return {
        "rps": round(result.rps, 1),
        "requests": result.requests,
        "p50_ms": round(result.p50_ms, 3),
        "p75_ms": round(result.p75_ms, 3),
        "p90_ms": round(result.p90_ms, 3),
        "p99_ms": round(result.p99_ms, 3),
        "max_ms": round(result.max_ms, 3),
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "error_codes": result.error_codes,
    }


def report_throughput(args, outcome: dict) -> dict:
    runs = outcome["runs"]
    print()
    print(
        "  c | direct req/s  p50 ms  p99 ms | gateway req/s  p50 ms  p99 ms "
        "| added p50  added p99 |   b/a | gw CPU µs/call | errors a/b"
    )
    print("-" * 133)
    for run in runs:
        a, b = run["direct"], run["gateway"]
        errors_a = a["non_2xx"] + sum(a["socket_errors"].values())
        errors_b = b["non_2xx"] + sum(b["socket_errors"].values())
        print(
            f"{run['connections']:>3} | {a['rps']:12,.0f} {a['p50_ms']:7.3f} {a['p99_ms']:7.3f} "
            f"| {b['rps']:13,.0f} {b['p50_ms']:7.3f} {b['p99_ms']:7.3f} "
            f"| {run['added_p50_ms']:+9.3f} {run['added_p99_ms']:+10.3f} "
            f"| {run['ratio']:5.1%} | {run['gateway_cpu_us_per_call']:14,.0f} "
            f"| {errors_a}/{errors_b}"
        )
    print()
    by_c = {run["connections"]: run for run in runs}
    verdicts = []

    def verdict(name: str, connections: int, check) -> None:
        run = by_c.get(connections)
        if run is None:
            verdicts.append((name, "n/a", f"(no run at c={connections})"))
            return
        value, ok = check(run)
        verdicts.append((name, "PASS" if ok else "MISS", value))

    verdict(
        "throughput at c=64 >= 10% of direct",
        64,
        lambda r: (f"{r['ratio']:.1%}", r["ratio"] >= TARGETS["ratio_c64"]),
    )
    verdict(
        "added p50 latency at c=1 < 1 ms",
        1,
        lambda r: (f"{r['added_p50_ms']:.3f} ms", r["added_p50_ms"] < TARGETS["added_p50_c1_ms"]),
    )
    verdict(
        "added p99 latency at c=16 < 5 ms",
        16,
        lambda r: (
            f"{r['added_p99_ms']:.3f} ms",
            r["added_p99_ms"] < TARGETS["added_p99_c16_ms"],
        ),
    )
    total_errors = sum(
        run[side]["non_2xx"] + sum(run[side]["socket_errors"].values())
        for run in runs
        for side in ("direct", "gateway")
    )
    verdicts.append(("no errors", "PASS" if total_errors == 0 else "MISS", str(total_errors)))
    records_ok = all(
        0 <= run["usage_records"] - run["wrk_2xx"] <= run["connections"]
        and run["usage_records_200"] == run["usage_records"]
        for run in runs
    )
    verdicts.append(
        (
            "usage records = wrk 2xx (+ <= c in flight at stop)",
            "OK" if records_ok else "CHECK",
            ", ".join(
                f"c={r['connections']}: {r['usage_records']} vs {r['wrk_2xx']}" for r in runs
            ),
        )
    )
    totals = outcome["totals"]
    verdicts.append(
        (
            "records in the bench DB = subscription's total_requests",
            "OK" if totals["records"] == totals["total_requests"] else "CHECK",
            f"{totals['records']} records, total_requests {totals['total_requests']} "
            "(incl. warm-up and the check call)",
        )
    )
    for name, status, value in verdicts:
        print(f"  {status:<5} {name:<58} {value}")
    print()
    report_floors(runs)
    return {"verdicts": verdicts}


def report_floors(runs: list[dict]) -> None:
    """The gateway next to what the same server and client allow with no work at all."""
    if not any(run.get("floors") for run in runs):
        return
    print("  reference floors, measured after the gateway on the same uvicorn:")
    print("  share of the direct upstream's req/s, and added p50")
    print("  c | empty ASGI app         | bare aiohttp proxy     | gateway")
    print("-" * 75)
    for run in runs:
        direct = run["direct"]
        cells = []
        floors = run.get("floors", {})
        for side in (floors.get("empty"), floors.get("proxy"), run["gateway"]):
            if not side:
                cells.append(f"{'n/a':<22}")
                continue
            share = side["rps"] / direct["rps"]
            added = side["p50_ms"] - direct["p50_ms"]
            cells.append(f"{share:6.1%}  {added:+8.3f} ms    ")
        print(f"{run['connections']:>3} | " + " | ".join(cells))
    print()


# --- soak -------------------------------------------------------------------------------


def soak(args, procs: Processes) -> dict:
    from bench.gateway.soak import soak as run_soak

    limit = raise_fd_limit(max(4 * args.streams + 1000, 8192))
    say(f"fd limit (soft) {limit}, inherited by the gateway and the upstream")
    stack = start_stack(args, procs, soak=True)
    agent = stack["keys"]["stream"]
    with phase(
        f"soak: {args.streams} streams, one piece every {args.interval:g} s x {args.pieces}"
    ):
        result = uvloop.run(
            run_soak(
                port=int(stack["base"].rsplit(":", 1)[1]),
                agent_id=agent["agent_id"],
                api_key=agent["api_key"],
                gateway_pid=stack["gateway"].pid,
                streams=args.streams,
                pieces=args.pieces,
                interval=args.interval,
                ramp_seconds=2.0,
                say=say,
            )
        )
        procs.check_alive()
    db = UsageDb(args)
    try:
        counts = db.settled(agent["agent_id"])
    finally:
        db.close()
    result["usage_records"] = counts["records"]
    result["usage_records_200"] = counts["records_200"]
    print()
    rows = [
        (
            "streams requested / opened / completed",
            f"{args.streams} / {result['opened']} / {result['completed']}",
        ),
        ("most open at once", str(result["max_open"])),
        ("all streams open after (ramp: 2 s)", f"{result['all_open_after_s']} s"),
        ("errors", json.dumps(result["errors"]) if result["errors"] else "0"),
        ("gateway RSS before (warm, idle)", f"{result['rss_before_mib']} MiB"),
        (
            "gateway RSS, all streams open (peak / median)",
            f"{result['rss_peak_open_mib']} / {result['rss_median_open_mib']} MiB",
        ),
        ("memory per connection (peak - before) / streams", f"{result['kib_per_connection']} KiB"),
        ("gateway RSS 2 s after the streams ended", f"{result['rss_after_mib']} MiB"),
        (
            "gateway open fds before / all open",
            f"{result['fds_before']} / {result['fds_all_open']}",
        ),
        ("gateway CPU over the soak", f"{result['gateway_cpu_percent']}% of one core"),
        ("response headers p50 / p99", f"{result['open_p50_ms']} / {result['open_p99_ms']} ms"),
        (
            f"first token p50 / p99 (upstream sends it after {args.interval:g} s)",
            f"{result['first_token_p50_ms']} / {result['first_token_p99_ms']} ms",
        ),
        (
            "longest silence in a stream p99 / max",
            f"{result['max_gap_p99_ms']} / {result['max_gap_max_ms']} ms",
        ),
        (
            "piece delay, upstream sent -> client read, p50 / p99 / max",
            f"{result['piece_delay_p50_ms']} / {result['piece_delay_p99_ms']} / "
            f"{result['piece_delay_max_ms']} ms",
        ),
        (
            "  same, once all streams were open (steady state)",
            f"{result['steady_piece_delay_p50_ms']} / {result['steady_piece_delay_p99_ms']} / "
            f"{result['steady_piece_delay_max_ms']} ms",
        ),
        (
            "this client's own event-loop lag p99 / max",
            f"{result['client_loop_lag_p99_ms']} / {result['client_loop_lag_max_ms']} ms",
        ),
        (
            "usage records (incl. 20 warm-up + 1 check stream)",
            f"{result['usage_records']} ({result['usage_records_200']} with status 200)",
        ),
    ]
    for name, value in rows:
        print(f"  {name:<58} {value}")
    print()
    return {**result, "versions": stack["versions"]}


# --- main -------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    stop_on_signals()
    lock = only_run(args.out)
    if lock is None:
        print("another gateway benchmark is running (same database and Redis db)", file=sys.stderr)
        return 1
    if not args.soak:
        wrk.require_wrk()
    facts = machine()
    say("gateway benchmark" + (" (soak)" if args.soak else ""))
    for name, value in facts.items():
        say(f"  {name}: {value}")
    say("  note: the machine may be shared; other load skews the figures (see load averages)")
    procs = Processes(args.out)
    try:
        if args.soak:
            outcome = soak(args, procs)
            summary = {"mode": "soak", "machine": facts, "soak": outcome}
        else:
            outcome = throughput(args, procs)
            verdicts = report_throughput(args, outcome)
            summary = {
                "mode": "throughput",
                "machine": facts,
                "versions": outcome["versions"],
                "wrk_seconds": args.duration,
                "pinning": {
                    "upstream": args.upstream_cpu,
                    "wrk": args.wrk_cpu,
                    "gateway": args.gateway_cpu,
                },
                "runs": outcome["runs"],
                "totals": outcome["totals"],
                **verdicts,
            }
    except KeyboardInterrupt:
        say("interrupted; stopping the processes started here")
        return 130
    finally:
        procs.stop_all()
    summary["load_average_end"] = loadavg()
    name = f"{summary['mode']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    (args.out / name).write_text(json.dumps(summary, indent=2, default=str))
    say(f"figures saved to {(args.out / name).relative_to(ROOT)}; logs in {args.out.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
