"""Usage records partitioned by UTC month on PostgreSQL (docs/usage-storage.md).

1. ``request_id`` loses ``unique=True`` (keeps an index) and ``(request_id, created_at)``
   becomes unique: regular operations, on both backends, so the model state is the same
   everywhere and SQLite needs nothing else.
2. On PostgreSQL only, the table is then rebuilt in place as a table partitioned by
   RANGE on ``created_at``: one partition per UTC month that has rows, the current
   month and the three after it, and a DEFAULT partition that takes any row no month
   partition covers (so an insert is never refused). Rows, ids and the id sequence's
   position are kept.

On a partitioned table the primary key and every unique constraint must contain the
partition key, so the database's primary key becomes ``(id, created_at)``; Django keeps
``id`` as the model's primary key (see ``UsageRecord``'s docstring).

Indexes move to the parent (partitions inherit them), except the single-column ones
whose column already leads a composite index: ``request_id`` (led by
``usage_request_unique``), ``access_id``, ``tenant_id`` and ``agent_instance_id`` (led
by ``usage_access_time``, ``usage_tenant_time``, ``usage_agent_time``) and the
``varchar_pattern_ops`` copy of ``request_id``. They would only slow every insert down.

The rebuild holds an ACCESS EXCLUSIVE lock on the table while it copies the rows: on a
large table, run it in a maintenance window (docs/usage-storage.md). It is one
transaction, so a failure leaves the old table as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import migrations, models

TABLE = "usage_usagerecord"
OLD = "usage_usagerecord_unpartitioned"
# Frozen copies of agent_registry/usage/partitions.py's naming: a migration must not
# depend on code that may change after it was written.
DEFAULT_PARTITION = f"{TABLE}_default"
MONTHS_AHEAD = 3
# Single-column indexes made redundant by a composite index with the same first column.
REDUNDANT_INDEX_COLUMNS = {"request_id", "access_id", "tenant_id", "agent_instance_id"}


def _partition_name(year: int, month: int) -> str:
    return f"{TABLE}_p{year:04d}_{month:02d}"


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _create_month(cursor, year: int, month: int) -> None:
    end_year, end_month = _next(year, month)
    cursor.execute(
        f"CREATE TABLE {_partition_name(year, month)} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
        f"TO ('{end_year:04d}-{end_month:02d}-01 00:00:00+00')"
    )


def _relkind(cursor, name: str) -> str | None:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [name])
    row = cursor.fetchone()
    return row[0] if row else None


def _redundant(indexdef: str) -> bool:
    """``CREATE INDEX … USING btree (col)`` or ``(col varchar_pattern_ops)`` on one of
    ``REDUNDANT_INDEX_COLUMNS``."""
    columns = indexdef.rsplit("(", 1)[1].rstrip(")").split(",")
    return len(columns) == 1 and columns[0].split()[0] in REDUNDANT_INDEX_COLUMNS


def _rebuild(cursor, *, partitioned: bool, extra_indexes: list[str]) -> None:
    """Replace the table by a partitioned one (or back), keeping rows, ids, the id
    sequence's position, constraints and indexes under their names."""
    cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('f', 'u') ORDER BY conname",
        [TABLE],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid) "
        "ORDER BY i.relname",
        [TABLE],
    )
    # A partitioned table's index reads "ON ONLY <table>"; the rebuilt one takes it whole.
    indexes = [sql.replace(" ON ONLY ", " ON ", 1) for (sql,) in cursor.fetchall()]
    indexes = [sql for sql in indexes if not (partitioned and _redundant(sql))] + extra_indexes
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    (old_sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")  # noqa: S608
    last_value, is_called = cursor.fetchone()
    cursor.execute(
        "SELECT DISTINCT date_part('year', created_at AT TIME ZONE 'UTC')::int, "  # noqa: S608
        f"date_part('month', created_at AT TIME ZONE 'UTC')::int FROM {TABLE}"
    )
    months = set(cursor.fetchall())

    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    # Same columns, NOT NULL and CHECK constraints, and an identity column of its own
    # (its sequence takes the old one's position below).
    cursor.execute(
        f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)"
        + (" PARTITION BY RANGE (created_at)" if partitioned else "")
    )
    if partitioned:
        now = datetime.now(UTC)
        year, month = now.year, now.month
        for _ in range(MONTHS_AHEAD + 1):
            months.add((year, month))
            year, month = _next(year, month)
        for year, month in sorted(months):
            _create_month(cursor, year, month)
        cursor.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")

    # Copy before building the indexes: one sort per index instead of a row at a time.
    cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")  # noqa: S608
    # Its sequence goes with it; so do its partitions (detached ones are left alone).
    cursor.execute(f"DROP TABLE {OLD}")

    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    (new_sequence,) = cursor.fetchone()
    cursor.execute("SELECT setval(%s, %s, %s)", [new_sequence, last_value, is_called])
    cursor.execute(f"ALTER SEQUENCE {new_sequence} RENAME TO {TABLE}_id_seq")

    key = "id, created_at" if partitioned else "id"
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({key})")
    for name, definition in constraints:
        # The one unique constraint, (request_id, created_at), holds the partition key.
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")
    for definition in indexes:
        cursor.execute(definition)  # they name this table by its (unchanged) name


def partition(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _relkind(cursor, TABLE) != "p":
            _rebuild(cursor, partitioned=True, extra_indexes=[])


def unpartition(apps, schema_editor) -> None:
    """Back to one plain table shaped as after the two operations above; reversing
    them then gives 0003's table (``request_id`` unique, with its ``_like`` index)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    # The foreign keys' own indexes, under the names Django gives them.
    extra = []
    for column in sorted(REDUNDANT_INDEX_COLUMNS - {"request_id"}):
        name = schema_editor._create_index_name(TABLE, [column], suffix="")
        extra.append(f"CREATE INDEX {name} ON {TABLE} ({column})")
    with schema_editor.connection.cursor() as cursor:
        if _relkind(cursor, TABLE) == "p":
            _rebuild(cursor, partitioned=False, extra_indexes=extra)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0003_billing_cycles"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usagerecord",
            name="request_id",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.AddConstraint(
            model_name="usagerecord",
            constraint=models.UniqueConstraint(
                fields=("request_id", "created_at"), name="usage_request_unique"
            ),
        ),
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
