"""The aggregation job killed midway, and two runs at once, against real PostgreSQL.

``manage.py aggregate_usage`` runs in subprocesses on the test database. Each UTC day
is one transaction (docs/billing.md), so whatever kills the job, every day's summaries
are either as they were before the run or the full result, never a mix; a re-run
completes the work and ends where a clean run ends. Two runs of the same range queue
on each day's advisory lock and end with the same rows as one.

Where the job is killed is chosen with locks, not timing: a stale summary row of one
day is held ``FOR UPDATE`` from the test, so the job commits the days before it, then
upserts that day's rows and blocks in the same transaction on the stale row's
``DELETE``. It is killed there, mid-day, with its writes uncommitted.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from agent_registry.usage.aggregation import aggregate_range, postgresql
from agent_registry.usage.models import DailyUsageSummary, UsageRecord
from tests import factories
from tests.waiting import WAIT_SECONDS, wait_until

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
FIRST = date(2026, 1, 1)
DAYS = 20
LAST = FIRST + timedelta(days=DAYS - 1)
KILLED_ON = 6  # the job is killed on its 6th day, after committing 5

# (access_id, currency) → the row's figures, per day; without ``id`` and ``computed_at``.
DayRows = dict[tuple[str, str], dict]
State = dict[date, DayRows]


def summaries() -> State:
    state: State = {FIRST + timedelta(days=i): {} for i in range(DAYS)}
    for row in DailyUsageSummary.objects.values():
        key = (str(row["access_id"]), row["currency"])
        state.setdefault(row["date"], {})[key] = {
            k: v for k, v in row.items() if k not in {"id", "computed_at"}
        }
    return state


def computed_without_keeping(prepare: Callable[[], None] = lambda: None) -> State:
    """What aggregating the range in-process gives (after ``prepare``), rolled back."""
    with transaction.atomic():
        prepare()
        aggregate_range(FIRST, LAST)
        result = summaries()
        transaction.set_rollback(True)
    return result


def _records(access, day: date, count: int, *, seed: int) -> list[UsageRecord]:
    made = []
    for index in range(count):
        status = (200, 201, 500, 404, 200)[(index + seed) % 5]
        made.append(
            factories.build_usage_record(
                access,
                at=datetime.combine(day, clock(hour=index % 24), tzinfo=UTC)
                + timedelta(minutes=seed),
                status=status,
                latency=37 * index + seed,
                tokens=(index, 2 * index),
                cost=Decimal("0.012345") * (index + 1),
                currency="USD",
            )
        )
    return made


@pytest.fixture
def usage() -> Iterator[dict]:
    """Twenty days of records, summarised once, then changed: late records on every day
    and a stale summary row on every day (a group with no records any more). So every
    day's pre-run state differs from the full result."""
    first, second, gone = (factories.make_subscription().access for _ in range(3))
    records = []
    for offset in range(DAYS):
        day = FIRST + timedelta(days=offset)
        records += _records(first, day, 12, seed=offset)
        records += _records(second, day, 5 + offset % 4, seed=offset + 1)
    UsageRecord.objects.bulk_create(records)
    aggregate_range(FIRST, LAST)
    late = []
    for offset in range(DAYS):
        day = FIRST + timedelta(days=offset)
        late += _records(first, day, 3, seed=offset + 7)
        DailyUsageSummary.objects.create(
            access=gone,
            tenant=gone.tenant,
            agent_instance=gone.agent_instance,
            date=day,
            currency="USD",
            total_requests=4,
            successful_requests=4,
            billable_requests=4,
            avg_response_time_ms=10,
            p95_response_time_ms=12,
            cost_cents=Decimal("0.5"),
            computed_at=datetime.now(UTC),
        )
    UsageRecord.objects.bulk_create(late)
    yield {"stale_access": gone}
    connections.close_all()


# --- subprocesses and locks ---------------------------------------------------------------


def _database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{db['USER'] or 'postgres'}{password}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


class Job:
    """``manage.py aggregate_usage --from FIRST --to LAST`` on the test database."""

    def __init__(self, tmp_path: Path) -> None:
        self.stderr = (tmp_path / f"stderr-{uuid.uuid4().hex[:6]}.txt").open("w+")
        env = {**os.environ, "DATABASE_URL": _database_url(), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "aggregate_usage",
                "--from",
                str(FIRST),
                "--to",
                str(LAST),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")  # end of output

    def next_line(self) -> str:
        try:
            line = self.lines.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            raise AssertionError(f"no output from the job; stderr: {self.errors()}") from None
        assert line, f"the job ended early; stderr: {self.errors()}"
        return line

    def finish(self) -> list[str]:
        code = self.process.wait(timeout=WAIT_SECONDS)
        lines = []
        while (line := self.lines.get(timeout=WAIT_SECONDS)) != "":
            lines.append(line)
        assert code == 0, f"exit {code}; stderr: {self.errors()}"
        return lines

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT_SECONDS)

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-2000:]


@pytest.fixture
def jobs(tmp_path) -> Iterator[Callable[[], Job]]:
    started: list[Job] = []

    def start() -> Job:
        started.append(Job(tmp_path))
        return started[-1]

    yield start
    for job in started:
        if job.process.poll() is None:
            job.kill()
        job.reader.join(timeout=WAIT_SECONDS)  # it has read to the end of the output
        job.stderr.close()
        if job.process.stdout is not None:
            job.process.stdout.close()


@pytest.fixture
def sessions() -> Iterator[Callable[..., psycopg.Connection]]:
    """Connections of the test's own, to hold locks and to watch the jobs' sessions."""
    opened: list[psycopg.Connection] = []

    def connect(*, autocommit: bool = True) -> psycopg.Connection:
        params = connections["default"].get_connection_params()
        for unused in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(unused, None)
        opened.append(psycopg.connect(**params, autocommit=autocommit))
        return opened[-1]

    yield connect
    for session in opened:
        session.close()


def wait_for(session: psycopg.Connection, sql: str, params: tuple, what: str) -> list[tuple]:
    """Poll ``sql`` (autocommit reads) until it returns rows."""
    return wait_until(lambda: session.execute(sql, params).fetchall(), what=what)


WAITING_ON_A_LOCK = """
SELECT pid, query FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND wait_event_type = 'Lock' AND query ILIKE %s
"""


# --- killed midway ------------------------------------------------------------------------


def test_a_job_killed_mid_day_leaves_no_day_half_written_and_a_rerun_completes_it(
    usage, jobs, sessions
):
    before = summaries()
    full = computed_without_keeping()
    clean = computed_without_keeping(lambda: DailyUsageSummary.objects.all().delete())
    assert full == clean
    assert all(before[day] != full[day] for day in before)  # every day has work to do
    killed_day = FIRST + timedelta(days=KILLED_ON - 1)
    holder, watcher = sessions(autocommit=False), sessions()

    # Hold the killed day's stale row: its DELETE, after that day's upsert, must wait.
    holder.execute(
        "SELECT 1 FROM usage_dailyusagesummary WHERE access_id = %s AND date = %s FOR UPDATE",
        (usage["stale_access"].pk, killed_day),
    )
    job = jobs()
    progress = [job.next_line() for _ in range(KILLED_ON - 1)]
    [(pid, query)] = wait_for(
        watcher, WAITING_ON_A_LOCK, ("%DELETE%",), "the job to block in the day's DELETE"
    )
    job.kill()
    holder.rollback()  # the orphaned session then reads EOF and rolls its day back
    wait_for(
        watcher,
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)",
        (pid,),
        "the killed job's session to end",
    )
    after_kill = summaries()

    assert f"{KILLED_ON - 1}/{DAYS} days  {killed_day - timedelta(days=1)}" in progress[-1]
    assert "DELETE" in query.upper()
    for day, rows in after_kill.items():
        assert rows in (before[day], full[day]), f"{day} is half-written"
    # the days it committed are done; the one it was killed in, and those after, untouched
    assert [after_kill[day] == full[day] for day in sorted(after_kill)] == [
        offset < KILLED_ON - 1 for offset in range(DAYS)
    ]

    lines = jobs().finish()

    assert lines[-1].startswith(f"aggregated {DAYS} days, ")
    assert summaries() == clean


# --- two at once ----------------------------------------------------------------------------


def test_two_concurrent_runs_of_the_same_range_give_the_rows_of_one(usage, jobs, sessions):
    clean = computed_without_keeping(lambda: DailyUsageSummary.objects.all().delete())
    DailyUsageSummary.objects.all().delete()
    holder = sessions()

    # Both queue on the first day's lock, then race through the same days together.
    holder.execute(
        "SELECT pg_advisory_lock(%s, %s)", (postgresql.LOCK_NAMESPACE, FIRST.toordinal())
    )
    first, second = jobs(), jobs()
    wait_for(
        holder,
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event = 'advisory' HAVING count(*) = 2",
        (),
        "both jobs to wait on the first day",
    )
    holder.execute(
        "SELECT pg_advisory_unlock(%s, %s)", (postgresql.LOCK_NAMESPACE, FIRST.toordinal())
    )
    outputs = [first.finish(), second.finish()]

    for lines in outputs:
        assert lines[-1].startswith(f"aggregated {DAYS} days, ")
    assert summaries() == clean
    assert DailyUsageSummary.objects.count() == sum(len(rows) for rows in clean.values())
