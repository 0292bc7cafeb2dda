"""What the metrics cost on the gateway's hot path, per process mode (not a test).

``python -m bench.metrics`` times the metric updates one gateway call makes
(``observe_request``, ``observe_call`` with tokens, ``observe_quota``: five samples) with
prometheus_client's in-memory values (one process) and in multiprocess mode (values in
mmap'd files, what ``PROMETHEUS_MULTIPROC_DIR`` turns on), then the cost of a scrape
that sums the files of several workers. Each mode runs in its own interpreter: the value
store is chosen when prometheus_client is imported. Figures: docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")
import django
django.setup()
from types import SimpleNamespace
from agent_registry.gateway import metrics
from agent_registry.gateway.runtimes.base import Usage

calls, tenants, agents = (int(a) for a in sys.argv[1:4])
snapshots = [
    SimpleNamespace(tenant_slug=f"tenant-{t}", agent_id=f"agent-{a}")
    for t in range(tenants) for a in range(agents)
]
usage = Usage(tokens_input=12, tokens_output=34)
for s in snapshots:  # every label set exists before timing (the steady state)
    metrics.observe_call(s, usage, 200, True)
    metrics.observe_request("invoke", 200, 0.01, s.agent_id)
    metrics.observe_quota(s, 1000, 500)
began = time.perf_counter()
for i in range(calls):
    s = snapshots[i % len(snapshots)]
    metrics.observe_quota(s, 1000, 500)
    metrics.observe_call(s, usage, 200, True)
    metrics.observe_request("invoke", 200, 0.0123, s.agent_id)
elapsed = time.perf_counter() - began
print(json.dumps({"us_per_call": elapsed / calls * 1e6}))
"""

SCRAPE = r"""
import json, sys, time
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry, path=sys.argv[1])
began = time.perf_counter()
for _ in range(int(sys.argv[2])):
    text = generate_latest(registry)
elapsed = (time.perf_counter() - began) / int(sys.argv[2])
print(json.dumps({"ms_per_scrape": elapsed * 1e3, "bytes": len(text)}))
"""


def run(code: str, args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--agents", type=int, default=25)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    sizes = [str(args.calls), str(args.tenants), str(args.agents)]
    base = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    print(
        f"{args.calls} calls over {args.tenants} tenants x {args.agents} agents "
        f"({args.tenants * args.agents} subscriptions); load average {os.getloadavg()[0]:.2f}"
    )
    memory = run(CHILD, sizes, base)
    print(f"in-memory values (one process):   {memory['us_per_call']:6.2f} µs per call")
    with tempfile.TemporaryDirectory() as directory:
        env = {**base, "PROMETHEUS_MULTIPROC_DIR": directory}
        files = run(CHILD, sizes, env)
        print(f"multiprocess mode (mmap'd files): {files['us_per_call']:6.2f} µs per call")
        for _ in range(args.workers - 1):  # the other workers' files, same label sets
            run(CHILD, ["1000", sizes[1], sizes[2]], env)
        scrape = run(SCRAPE, [directory, "5"], env)
        print(
            f"a scrape summing {args.workers} workers' files: {scrape['ms_per_scrape']:.0f} ms, "
            f"{scrape['bytes'] / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()
