"""Soak: many concurrent streams held open through the gateway, memory per connection.

Each client opens ``POST /api/v1/agents/<agent>/invoke`` with ``"stream": true``; the
agent's ``openai`` runtime points at the slow SSE upstream (``upstream.py``), which
sends one piece every ``interval`` seconds, ``pieces`` times. The gateway's RSS is read
from ``/proc/<pid>/status`` before the streams open and while all of them are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bench.gateway.procs import cpu_seconds, open_fds, rss_kib


@dataclass
class StreamStats:
    opened: int = 0
    open_now: int = 0
    completed: int = 0
    tokens: int = 0
    errors: Counter = field(default_factory=Counter)
    open_latency: list[float] = field(default_factory=list)  # request → response headers
    first_token: list[float] = field(default_factory=list)  # request → first token
    max_gap: list[float] = field(default_factory=list)  # longest silence between tokens
    # upstream sent the piece → client read it (same host, same clock): the gateway's
    # forwarding delay, plus any lag of this client's own event loop.
    piece_delay: list[tuple[float, float]] = field(default_factory=list)  # (read at, delay)
    all_open_at: float | None = None


@dataclass
class Sample:
    at: float
    rss_kib: int
    open_streams: int


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _sse_lines(reader: asyncio.StreamReader) -> AsyncIterator[str]:
    """The lines of a chunked (``Transfer-Encoding: chunked``) event stream."""
    pending = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            break
        pending += (await reader.readexactly(size + 2))[:-2]
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode()
    if pending:
        yield pending.decode()


async def _one_stream(
    port: int,
    path: str,
    api_key: str,
    text: str,
    pieces: int,
    stats: StreamStats,
) -> None:
    """One raw HTTP/1.1 client (lighter than httpx, so the client is not the bottleneck)."""
    started = time.perf_counter()
    opened = False
    writer = None
    body = json.dumps({"input": text, "stream": True}).encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {api_key}\r\n"
            "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        if status != 200 or "transfer-encoding: chunked" not in head:
            stats.errors[f"HTTP {status}"] += 1
            return
        opened = True
        stats.opened += 1
        stats.open_now += 1
        stats.open_latency.append(time.perf_counter() - started)
        tokens, last, gap, ended, event = 0, None, 0.0, False, ""
        async for line in _sse_lines(reader):
            if line.startswith("event: "):
                event = line[7:]
                if event == "end":
                    ended = True
                elif event == "error":
                    stats.errors["event: error"] += 1
            elif event == "token" and line.startswith("data: "):
                event = ""
                now = time.perf_counter()
                if last is None:
                    stats.first_token.append(now - started)
                else:
                    gap = max(gap, now - last)
                last = now
                tokens += 1
                sent = _sent_at(line[6:])
                if sent is not None:
                    stats.piece_delay.append((now, time.time() - sent))
        stats.tokens += tokens
        stats.max_gap.append(gap)
        if ended and tokens == pieces:
            stats.completed += 1
        elif ended:
            stats.errors[f"ended with {tokens}/{pieces} pieces"] += 1
        else:
            stats.errors["closed without event: end"] += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
        stats.errors[type(error).__name__] += 1
    finally:
        if opened:
            stats.open_now -= 1
        if writer is not None:
            writer.close()


def _sent_at(data: str) -> float | None:
    try:
        return float(json.loads(data)["text"].rsplit("@", 1)[1])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


async def _loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """How late this client's own event loop wakes up (it shares the machine)."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.1)
        lags.append(time.perf_counter() - before - 0.1)


async def _sampler(pid: int, stats: StreamStats, samples: list[Sample], stop: asyncio.Event):
    while not stop.is_set():
        samples.append(Sample(time.perf_counter(), rss_kib(pid), stats.open_now))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def soak(
    *,
    port: int,
    agent_id: str,
    api_key: str,
    gateway_pid: int,
    streams: int,
    pieces: int,
    interval: float,
    ramp_seconds: float,
    say,
) -> dict:
    path = f"/api/v1/agents/{agent_id}/invoke"

    # Warm-up: code paths, pools, the key's snapshot and the limiter script.
    warm = StreamStats()
    await asyncio.gather(
        *(
            _one_stream(port, path, api_key, "warm-up pieces=2 interval=0.05", 2, warm)
            for _ in range(20)
        )
    )
    if warm.completed != 20:
        raise RuntimeError(f"warm-up streams failed: {dict(warm.errors)}")
    await asyncio.sleep(1.0)
    before = statistics.median(rss_kib(gateway_pid) for _ in range(5))
    fds_before = open_fds(gateway_pid)
    say(f"gateway RSS before: {before / 1024:.1f} MiB, {fds_before} open fds (warm, idle)")

    stats = StreamStats()
    samples: list[Sample] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sampler(gateway_pid, stats, samples, stop))
    lags: list[float] = []
    lag_task = asyncio.create_task(_loop_lag(lags, stop))
    text = f"soak pieces={pieces} interval={interval}"
    steps = max(1, int(ramp_seconds * 10))
    batch = max(1, math.ceil(streams / steps))
    tasks: list[asyncio.Task] = []
    started = time.perf_counter()
    cpu_start = cpu_seconds(gateway_pid)
    for first in range(0, streams, batch):
        for _ in range(first, min(first + batch, streams)):
            tasks.append(asyncio.create_task(_one_stream(port, path, api_key, text, pieces, stats)))
        await asyncio.sleep(0.1)
    say(f"{streams} streams requested in {time.perf_counter() - started:.1f} s")

    fds_during = -1
    budget = ramp_seconds + pieces * interval + 30.0
    while not all(task.done() for task in tasks):
        await asyncio.sleep(0.25)
        elapsed = time.perf_counter() - started
        if stats.all_open_at is None and stats.open_now >= streams:
            stats.all_open_at = time.perf_counter()
            fds_during = open_fds(gateway_pid)
            say(
                f"all {streams} streams open after {elapsed:.1f} s; gateway RSS "
                f"{rss_kib(gateway_pid) / 1024:.1f} MiB, {fds_during} open fds"
            )
        if elapsed > budget:
            stats.errors["cancelled: soak time budget exceeded"] += sum(
                1 for task in tasks if not task.done()
            )
            for task in tasks:
                task.cancel()
            break
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu_used = cpu_seconds(gateway_pid) - cpu_start
    wall = time.perf_counter() - started
    await asyncio.sleep(2.0)
    stop.set()
    await sampler
    await lag_task
    after = rss_kib(gateway_pid)

    full = [s.rss_kib for s in samples if s.open_streams >= streams]
    held = [s.rss_kib for s in samples if s.open_streams >= 0.9 * streams]
    peak = max(full or held or [s.rss_kib for s in samples])
    delays = [delay for _, delay in stats.piece_delay]
    # Steady state: pieces read once every stream was open (the ramp's burst excluded).
    steady = [
        delay
        for read_at, delay in stats.piece_delay
        if stats.all_open_at is not None and read_at > stats.all_open_at + interval
    ]

    def ms(value: float) -> float:
        return round(1000 * value, 1)

    return {
        "streams": streams,
        "pieces": pieces,
        "interval_s": interval,
        "opened": stats.opened,
        "completed": stats.completed,
        "errors": dict(stats.errors),
        "tokens": stats.tokens,
        "max_open": max((s.open_streams for s in samples), default=0),
        "wall_s": round(wall, 1),
        "all_open_after_s": round(stats.all_open_at - started, 1) if stats.all_open_at else None,
        "rss_before_mib": round(before / 1024, 1),
        "rss_peak_open_mib": round(peak / 1024, 1),
        "rss_median_open_mib": round(statistics.median(full or held or [peak]) / 1024, 1),
        "rss_after_mib": round(after / 1024, 1),
        "kib_per_connection": round((peak - before) / streams, 1),
        "fds_before": fds_before,
        "fds_all_open": fds_during,
        "gateway_cpu_percent": round(100 * cpu_used / wall, 1),
        "open_p50_ms": ms(_percentile(stats.open_latency, 50)),
        "open_p99_ms": ms(_percentile(stats.open_latency, 99)),
        "first_token_p50_ms": ms(_percentile(stats.first_token, 50)),
        "first_token_p99_ms": ms(_percentile(stats.first_token, 99)),
        "max_gap_p99_ms": ms(_percentile(stats.max_gap, 99)),
        "max_gap_max_ms": ms(max(stats.max_gap, default=float("nan"))),
        "piece_delay_p50_ms": ms(_percentile(delays, 50)),
        "piece_delay_p99_ms": ms(_percentile(delays, 99)),
        "piece_delay_max_ms": ms(max(delays, default=float("nan"))),
        "steady_piece_delay_p50_ms": ms(_percentile(steady, 50)),
        "steady_piece_delay_p99_ms": ms(_percentile(steady, 99)),
        "steady_piece_delay_max_ms": ms(max(steady, default=float("nan"))),
        "client_loop_lag_p99_ms": ms(_percentile(lags, 99)),
        "client_loop_lag_max_ms": ms(max(lags, default=float("nan"))),
    }
