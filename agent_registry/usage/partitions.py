"""Monthly partitions of the usage records on PostgreSQL: create ahead, list, detach, attach.

The parent ``usage_usagerecord`` is partitioned by RANGE on ``created_at`` (migration
0004). ``usage_usagerecord_pYYYY_MM`` holds the UTC month ``[YYYY-MM-01 00:00, first of
the next month 00:00)``. ``usage_usagerecord_default`` takes every row that no month
partition covers, so an insert is never refused when this job has fallen behind.

DEFAULT policy: creating a month moves that month's rows out of DEFAULT into the new
partition, in the same transaction (PostgreSQL would refuse to attach a partition
whose rows are still in DEFAULT). ``ensure_partitions`` therefore also creates the
month of any row found in DEFAULT, so DEFAULT drains by itself. The one exception is
a month that was detached (its table still exists): its late rows stay in DEFAULT,
still visible through the parent, and the job logs a warning. Attaching the month
again (``attach_partition``, e.g. after restoring it from the archive) moves them in.

Each change is one short transaction with a lock timeout. It takes a SHARE UPDATE
EXCLUSIVE lock on the parent, so reads and inserts go on, and an ACCESS EXCLUSIVE
lock on DEFAULT, which should be empty or nearly so. A job that cannot get its lock
fails and the next run tries again.

SQLite keeps one plain table: everything here is a no-op there, or refuses.
See docs/usage-storage.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.db import connection, transaction
from django.utils import timezone

from agent_registry.core import periods
from agent_registry.usage.errors import PartitionError
from agent_registry.usage.models import UsageRecord

log = structlog.get_logger(__name__)

TABLE = UsageRecord._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
MONTHS_AHEAD = 3
# How long a partition change waits for its locks. Queries queue behind a waiting ALTER
# TABLE, so it must not wait long; the job simply runs again later.
LOCK_TIMEOUT = "5s"
# First key of the two-key advisory lock ("UPRT"): two jobs at once run one after the other.
_LOCK_NAMESPACE = 0x55505254
_NAME = re.compile(rf"^{TABLE}_p(\d{{4}})_(\d{{2}})$")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    period: str | None  # YYYY-MM; None for DEFAULT (or a partition not named by month)
    bounds: str  # as PostgreSQL prints them
    # The planner's estimate (pg_class.reltuples): cheap on any size; -1 = never analysed.
    estimated_rows: int


def is_partitioned() -> bool:
    """Whether the usage records table is a partitioned table (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partition_name(period: str) -> str:
    """``2026-11`` → ``usage_usagerecord_p2026_11``; ValueError if not a month."""
    year, month = periods.parse_period(period).split("-")
    return f"{TABLE}_p{year}_{month}"


def _bounds(period: str) -> tuple[str, str]:
    start = periods.period_start(period)
    end = periods.next_month_start(start)
    # Literals made from a validated month: DDL takes no parameters.
    return start.isoformat(), end.isoformat()


def list_partitions() -> list[Partition]:
    """The partitions attached to the parent, months in order, DEFAULT last."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [TABLE],
        )
        rows = cursor.fetchall()
    found = []
    for name, bounds, estimate in rows:
        match = _NAME.match(name)
        period = f"{match[1]}-{match[2]}" if match else None
        found.append(Partition(name, period, bounds, int(estimate)))
    return sorted(found, key=lambda p: (p.name == DEFAULT_PARTITION, p.name))


def default_rows() -> int:
    """Rows in DEFAULT: normally 0. An exact count, as DEFAULT is meant to stay small."""
    if not is_partitioned():
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION}")  # noqa: S608
        return cursor.fetchone()[0]


def _default_periods(cursor) -> list[str]:
    cursor.execute(
        "SELECT DISTINCT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM') "  # noqa: S608
        f"FROM {DEFAULT_PARTITION} ORDER BY 1"
    )
    return [period for (period,) in cursor.fetchall()]


def _begin_change(cursor) -> None:
    # ALTER TABLE refuses to run while deferred foreign-key checks of the same
    # transaction are pending: run them now (they would run at commit anyway).
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
    cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_LOCK_NAMESPACE])


def _constraints(cursor, table: str, kinds: str) -> dict[str, str]:
    """name → definition of ``table``'s constraints of the given ``contype`` letters."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = ANY(%s)",
        [table, list(kinds)],
    )
    return dict(cursor.fetchall())


def _prepare(cursor, name: str, period: str) -> None:
    """Give the standalone table ``name`` the month's bounds and the parent's primary
    key, unique constraint and indexes, which ATTACH then adopts instead of building
    them while it holds its locks. On many rows (a restored month, a bulk load) this is
    the slow part; it locks nothing but the table itself. Idempotent."""
    start, end = _bounds(period)
    if f"{name}_bounds" not in _constraints(cursor, name, "c"):
        # Also lets ATTACH trust the rows without scanning them; a row outside the
        # month makes this fail, and nothing is attached.
        cursor.execute(
            f"ALTER TABLE {name} ADD CONSTRAINT {name}_bounds "
            f"CHECK (created_at >= '{start}' AND created_at < '{end}')"
        )
    present = set(_constraints(cursor, name, "pu").values())
    for definition in sorted(_constraints(cursor, TABLE, "pu").values()):
        if definition not in present:
            cursor.execute(f"ALTER TABLE {name} ADD {definition}")
    cursor.execute(
        "SELECT pg_get_indexdef(x.indexrelid), x.indrelid = %s::regclass FROM pg_index x "
        "WHERE x.indrelid IN (%s::regclass, %s::regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        [TABLE, TABLE, name],
    )
    found: dict[bool, set[str]] = {True: set(), False: set()}
    for definition, on_parent in cursor.fetchall():
        found[on_parent].add(definition.split(" USING ", 1)[1])  # without name and table
    for method_and_columns in sorted(found[True] - found[False]):
        cursor.execute(f"CREATE INDEX ON {name} USING {method_and_columns}")


def _add_foreign_keys(cursor, name: str, *, validate: bool) -> list[str]:
    """Give ``name`` the parent's foreign keys it lacks; return those not yet validated.

    With ``validate=False`` they are added NOT VALID: adding one briefly locks the
    referenced table against writes, and checking the rows must not happen under it.
    """
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f'",
        [name],
    )
    existing = {}
    pending = []
    for constraint, definition, valid in cursor.fetchall():
        existing[definition.removesuffix(" NOT VALID")] = constraint
        if not valid:
            pending.append(constraint)
    for index, definition in enumerate(sorted(_constraints(cursor, TABLE, "f").values())):
        if definition in existing:
            continue
        constraint = f"{name}_fk{index}"
        suffix = "" if validate else " NOT VALID"
        cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {constraint} {definition}{suffix}")
        if not validate:
            pending.append(constraint)
    return pending


def _attach(cursor, name: str, period: str) -> int:
    """Attach the prepared table ``name`` as ``period``'s partition, first moving that
    month's rows out of DEFAULT into it; return how many rows moved."""
    start, end = _bounds(period)
    # No new row may reach DEFAULT between the move and the attach; reads go on.
    cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN EXCLUSIVE MODE")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "  # noqa: S608
        f"WHERE created_at >= '{start}' AND created_at < '{end}' RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved"
    )
    moved = cursor.rowcount
    # Adopts the table's matching indexes and constraints instead of building them.
    cursor.execute(
        f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')"
    )
    cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_bounds")
    return moved


def _relation(cursor, name: str) -> tuple[bool] | None:
    """None if no table ``name`` exists, else ``(is it a partition?,)``."""
    cursor.execute("SELECT c.relispartition FROM pg_class c WHERE c.oid = to_regclass(%s)", [name])
    return cursor.fetchone()


def create_partition(period: str) -> str | None:
    """Create the partition of ``period`` (moving its rows out of DEFAULT); return its
    name, or None if it exists. PartitionError if a table of that name exists but is
    not attached (a detached month)."""
    name = partition_name(period)
    if not is_partitioned():
        raise PartitionError(f"{TABLE} is not partitioned on this database")
    with transaction.atomic(), connection.cursor() as cursor:
        _begin_change(cursor)
        found = _relation(cursor, name)
        if found is not None:
            if found[0]:
                return None
            raise PartitionError(
                f"{name} exists but is not attached to {TABLE} (a detached month?): "
                "attach it (usage_partitions --attach), or archive and drop it"
            )
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE)"
        )
        _prepare(cursor, name, period)  # an empty table: instant
        _add_foreign_keys(cursor, name, validate=True)
        moved = _attach(cursor, name, period)
    log.info("usage_partition_created", partition=name, moved_from_default=moved)
    return name


def attach_partition(period: str) -> str:
    """Attach the existing table ``usage_usagerecord_pYYYY_MM`` as its month's partition:
    a detached month brought back from the archive, or a month bulk-loaded on its own.

    Its columns must be the parent's and its rows within the month. First, locking only
    that table, it gets the parent's keys, indexes and foreign keys, and its rows are
    checked (on many rows this takes a while; a generous ``maintenance_work_mem`` makes
    the index builds in-memory sorts). Then one short transaction attaches it, adopting
    them. PartitionError if there is no such table or it is already attached.
    """
    name = partition_name(period)
    if not is_partitioned():
        raise PartitionError(f"{TABLE} is not partitioned on this database")
    with transaction.atomic(), connection.cursor() as cursor:
        found = _relation(cursor, name)
        if found is None:
            raise PartitionError(f"there is no table {name} to attach")
        if found[0]:
            raise PartitionError(f"{name} is already a partition")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        _prepare(cursor, name, period)
    with transaction.atomic(), connection.cursor() as cursor:
        _begin_change(cursor)
        pending = _add_foreign_keys(cursor, name, validate=False)
    for constraint in pending:  # checks the rows without blocking writes elsewhere
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {name} VALIDATE CONSTRAINT {constraint}")
    with transaction.atomic(), connection.cursor() as cursor:
        _begin_change(cursor)
        if _relation(cursor, name) != (False,):
            raise PartitionError(f"{name} changed while it was being prepared")
        moved = _attach(cursor, name, period)
    log.info("usage_partition_attached", partition=name, moved_from_default=moved)
    return name


def ensure_partitions(
    *, months_ahead: int = MONTHS_AHEAD, now: datetime | None = None
) -> list[str]:
    """Create the missing month partitions from ``now``'s month to ``months_ahead``
    months after it, and those of any month found in DEFAULT; return the names created.

    Idempotent. No-op returning [] unless the table is partitioned (PostgreSQL).
    """
    if months_ahead < 0:
        raise ValueError(f"months_ahead must be 0 or more, not {months_ahead}")
    if not is_partitioned():
        return []
    current = periods.period_of(now or timezone.now())
    wanted = [periods.add_months(current, offset) for offset in range(months_ahead + 1)]
    with connection.cursor() as cursor:
        stranded = [p for p in _default_periods(cursor) if p not in wanted]
    created = [name for period in wanted if (name := create_partition(period))]
    for period in stranded:
        try:
            name = create_partition(period)
        except PartitionError as exc:  # a detached month: its late rows stay in DEFAULT
            log.warning("usage_rows_left_in_default", period=period, reason=str(exc))
            continue
        if name:
            created.append(name)
    return created


def detach_partition(period: str, *, now: datetime | None = None) -> str:
    """Detach a past month's partition; its table is kept (for archiving), not dropped.

    Its rows leave the parent: nothing reads them any more (aggregation, API, export).
    Refuses the current month and later ones, which are still being written.
    ValueError for a malformed period; PartitionError when refused.
    """
    name = partition_name(period)
    if not is_partitioned():
        raise PartitionError(f"{TABLE} is not partitioned on this database")
    current = periods.period_of(now or timezone.now())
    if period >= current:
        raise PartitionError(
            f"{period} is not a past month (the current one is {current}): "
            "its records are still being written"
        )
    with transaction.atomic(), connection.cursor() as cursor:
        _begin_change(cursor)
        cursor.execute(
            "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s) "
            "AND inhparent = %s::regclass",
            [name, TABLE],
        )
        if cursor.fetchone() is None:
            raise PartitionError(f"{TABLE} has no partition {name}")
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
    log.info("usage_partition_detached", partition=name)
    return name


def create_partitions_ahead() -> int:
    """The scheduled job: the current month and the next three exist; DEFAULT drained.

    Returns how many partitions were created.
    """
    created = ensure_partitions()
    left = default_rows()
    if left:
        log.warning("usage_default_partition_not_empty", rows=left)
    return len(created)
