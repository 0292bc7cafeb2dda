"""Generate usage records and load them with PostgreSQL ``COPY`` (psycopg 3 ``cursor.copy``).

The records are what the gateway writes for one month of traffic, in time order (the
gateway appends in time order too), spread evenly over ``days`` days:

* which subscription: heavy-tailed (Pareto weights), so a few subscriptions make most
  of the calls, as in a real marketplace;
* endpoint: 70% ``invoke``, 30% ``chat.completions``; 35% streamed;
* status: 96.5% 200, 1.5% 502, 1% 504 (the agent's 60 s timeout), 1% 499 (a streaming
  client left); only 2xx and delivered partial streams are billable;
* latency: log-normal around 900 ms for 200s (sigma 0.7), 300 ms for 502s;
* tokens: log-normal around 350 in and 250 out; a quarter of the calls estimated;
* cost: the plan's price for billable calls on pay-per-use plans, else 0.

Each plan gets a pool of ``VARIANTS`` pre-drawn (status, latency, tokens, cost, …)
tuples, and each row takes one at random: the same distributions at a fraction of the
cost of drawing every field per row, so the generator keeps ahead of PostgreSQL.
Request ids are random 32-hex strings, as the gateway mints them (uuid4).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg

COLUMNS = (
    "request_id, access_id, tenant_id, agent_instance_id, plan_id, endpoint, request_method, "
    "response_status, response_time_ms, tokens_input, tokens_output, tokens_total, "
    "tokens_estimated, estimated_cost_cents, currency, billing_period, billable, streamed, "
    "partial, created_at"
)
VARIANTS = 2048
CHUNK = 20_000  # rows generated and sent per write


@dataclass(frozen=True, slots=True)
class LoadResult:
    rows: int
    seconds: float
    generator_cpu_seconds: float  # this process's CPU: how much of the time was Python
    commits: int


def _lognormal(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    return min(cap, max(1, int(rng.lognormvariate(math.log(median), sigma))))


def _variant(rng: random.Random, sub: dict, period: str) -> str:
    """One call's fields from ``endpoint`` to ``partial`` (tab-separated, COPY text)."""
    endpoint = "invoke" if rng.random() < 0.7 else "chat.completions"
    streamed = rng.random() < 0.35
    draw = rng.random()
    status = 200 if draw < 0.965 else 502 if draw < 0.98 else 504 if draw < 0.99 else 499
    if status == 499 and not streamed:
        status = 200  # only a stream can be left half-way
    tokens_in = _lognormal(rng, 350, 0.9, 100_000)
    tokens_out = _lognormal(rng, 250, 0.8, 50_000)
    partial = False
    if status == 200:
        latency = _lognormal(rng, 900, 0.7, 60_000)
        billable = True
    elif status == 502:
        latency = _lognormal(rng, 300, 1.0, 60_000)
        partial = streamed and rng.random() < 0.5
        tokens_out = tokens_out // 4 if partial else 0
        billable = tokens_out > 0
    elif status == 504:
        latency = 60_000 + rng.randrange(50)
        tokens_out = 0
        billable = False
    else:  # 499: the client left mid-stream, billed for what it got
        latency = rng.randrange(200, 20_000)
        partial = True
        tokens_out = rng.randrange(0, tokens_out + 1)
        billable = tokens_out > 0
    total = tokens_in + tokens_out
    cost = Decimal(0)
    if billable and sub["billing_model"] == "usage":
        per_call = Decimal(sub["price_per_call"])
        per_1k = Decimal(sub["price_per_1k_tokens"])
        cost = ((per_call + per_1k * total / 1000) * 100).quantize(Decimal("0.000001"))
    flag = {True: "t", False: "f"}
    return "\t".join(
        (
            endpoint,
            "POST",
            str(status),
            str(latency),
            str(tokens_in),
            str(tokens_out),
            str(total),
            flag[rng.random() < 0.25],
            f"{cost:f}",
            sub["currency"],
            period,
            flag[billable],
            flag[streamed],
            flag[partial],
        )
    )


def load(
    url: str,
    subscriptions: list[dict],
    *,
    rows: int,
    start: datetime,
    days: int,
    period: str,
    seed: int,
    batch_rows: int,
    table: str,
    progress: Callable[[int, float], None],
) -> LoadResult:
    """COPY ``rows`` records into ``table``; one transaction per ``batch_rows``."""
    rng = random.Random(seed)
    prefixes = ["\t".join((s["access"], s["tenant"], s["agent"], s["plan"])) for s in subscriptions]
    pools: dict[str, list[str]] = {}
    for sub in subscriptions:
        if sub["plan"] not in pools:
            pools[sub["plan"]] = [_variant(rng, sub, period) for _ in range(VARIANTS)]
    sub_pools = [pools[s["plan"]] for s in subscriptions]
    weights = [min(rng.paretovariate(1.2), 200.0) for _ in subscriptions]
    cumulative = []
    running = 0.0
    for weight in weights:
        running += weight
        cumulative.append(running)
    indexes = range(len(subscriptions))

    start_us = int(start.timestamp() * 1_000_000)
    span_us = days * 86_400 * 1_000_000
    last_second = -1
    second_text = ""
    choices, randrange = rng.choices, rng.randrange

    began = time.monotonic()
    cpu_began = time.process_time()
    done = commits = 0
    with psycopg.connect(url) as conn:
        # Durability of each commit is not what is measured; a crash only loses the bench.
        conn.execute("SET synchronous_commit TO off")
        while done < rows:
            in_batch = min(batch_rows, rows - done)
            copy_sql = f"COPY {table} ({COLUMNS}) FROM STDIN"
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                sent = 0
                while sent < in_batch:
                    n = min(CHUNK, in_batch - sent)
                    ids = os.urandom(16 * n).hex()
                    picks = choices(indexes, cum_weights=cumulative, k=n)
                    lines = []
                    first = done + sent
                    for j in range(n):
                        moment = start_us + ((first + j) * span_us) // rows
                        second, micros = divmod(moment, 1_000_000)
                        if second != last_second:
                            last_second = second
                            second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
                        s = picks[j]
                        pool = sub_pools[s]
                        lines.append(
                            f"{ids[32 * j : 32 * j + 32]}\t{prefixes[s]}\t"
                            f"{pool[randrange(VARIANTS)]}\t{second_text}.{micros:06d}+00\n"
                        )
                    copy.write("".join(lines))
                    sent += n
                    progress(done + sent, time.monotonic() - began)
            conn.commit()
            commits += 1
            done += in_batch
    return LoadResult(
        rows=done,
        seconds=time.monotonic() - began,
        generator_cpu_seconds=time.process_time() - cpu_began,
        commits=commits,
    )
