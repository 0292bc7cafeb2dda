"""Monthly partitions of the usage records: layout, routing, the job, DEFAULT, detach,
pruning, and the upgrade of a populated table (docs/usage-storage.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.utils import timezone

from agent_registry.access.models import AgentAccess
from agent_registry.core import periods
from agent_registry.usage import aggregation, partitions, selectors
from agent_registry.usage.aggregation import postgresql
from agent_registry.usage.models import DailyUsageSummary, UsageRecord
from agent_registry.usage.writer import UsageRow, write_batch
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
TABLE = "usage_usagerecord"

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
sqlite_only = pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite only")


def record(access: AgentAccess, at: datetime, **fields) -> UsageRecord:
    return UsageRecord.objects.create(
        request_id=fields.pop("request_id", uuid.uuid4().hex),
        access=access,
        tenant=access.tenant,
        agent_instance=access.agent_instance,
        plan=access.plan,
        endpoint="invoke",
        response_status=200,
        response_time_ms=100,
        tokens_input=3,
        tokens_output=4,
        tokens_total=7,
        currency="USD",
        billing_period=periods.period_of(at),
        billable=True,
        created_at=at,
        **fields,
    )


def partition_of(record_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE id = %s", [record_id])  # noqa: S608
        return cursor.fetchone()[0]


def names() -> list[str]:
    return [p.name for p in partitions.list_partitions()]


@pytest.fixture
def access(db) -> AgentAccess:
    return factories.make_subscription().access


# --- layout ---------------------------------------------------------------------------


@postgresql_only
@pytest.mark.django_db
def test_the_table_is_partitioned_by_month_after_migrate():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_partkeydef(%s::regclass)", [TABLE])
        assert cursor.fetchone()[0] == "RANGE (created_at)"
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY conname",
            [TABLE],
        )
        assert cursor.fetchall() == [
            ("usage_request_unique", "UNIQUE (request_id, created_at)"),
            ("usage_usagerecord_pkey", "PRIMARY KEY (id, created_at)"),
        ]
        cursor.execute(
            "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index x "
            "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum "
            "WHERE x.indrelid = %s::regclass GROUP BY x.indexrelid",
            [TABLE],
        )
        indexes = sorted(tuple(columns) for (columns,) in cursor.fetchall())
    assert indexes == [
        ("access_id", "created_at"),
        ("agent_instance_id", "created_at"),
        ("created_at",),
        ("id", "created_at"),
        ("plan_id",),
        ("request_id", "created_at"),
        ("tenant_id", "created_at"),
    ]
    current = periods.period_of(timezone.now())
    ahead = [partitions.partition_name(periods.add_months(current, n)) for n in range(4)]
    assert set(ahead) <= set(names())
    assert names()[-1] == partitions.DEFAULT_PARTITION


@pytest.mark.django_db
def test_a_malformed_month_is_refused_before_any_database_work():
    for bad in ("2026-13", "2026-1", "26-01", "", "2026-00"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            partitions.partition_name(bad)
    assert partitions.partition_name("2026-03") == "usage_usagerecord_p2026_03"


# --- routing and the job -----------------------------------------------------------------


@postgresql_only
def test_records_land_in_their_months_partition(access):
    partitions.ensure_partitions(months_ahead=1, now=datetime(2026, 3, 15, tzinfo=UTC))
    last_instant = record(access, datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC))
    next_month = record(access, datetime(2026, 4, 1, tzinfo=UTC))
    row = factories.usage_row_for(access, at=datetime(2026, 4, 2, 8, tzinfo=UTC))
    write_batch([row])  # the gateway's own path
    written = UsageRecord.objects.get(request_id=row.request_id)

    assert partition_of(last_instant.pk) == "usage_usagerecord_p2026_03"
    assert partition_of(next_month.pk) == "usage_usagerecord_p2026_04"
    assert partition_of(written.pk) == "usage_usagerecord_p2026_04"


@postgresql_only
@pytest.mark.django_db
def test_ensure_partitions_is_idempotent():
    now = datetime(2031, 1, 20, tzinfo=UTC)

    first = partitions.ensure_partitions(months_ahead=3, now=now)
    second = partitions.ensure_partitions(months_ahead=3, now=now)

    assert first == [
        "usage_usagerecord_p2031_01",
        "usage_usagerecord_p2031_02",
        "usage_usagerecord_p2031_03",
        "usage_usagerecord_p2031_04",
    ]
    assert second == []
    assert [n for n in names() if n.startswith("usage_usagerecord_p2031")] == first


@postgresql_only
def test_a_month_without_partition_goes_to_default_and_moves_out_when_created(access):
    early = record(access, datetime(2031, 7, 1, tzinfo=UTC))
    late = record(access, datetime(2031, 7, 31, 23, 59, tzinfo=UTC))
    other = record(access, datetime(2019, 5, 4, tzinfo=UTC))  # a month the job never creates
    assert {partition_of(r.pk) for r in (early, late, other)} == {partitions.DEFAULT_PARTITION}
    assert partitions.default_rows() == 3

    created = partitions.ensure_partitions(months_ahead=0, now=datetime(2031, 7, 10, tzinfo=UTC))

    assert created == ["usage_usagerecord_p2031_07", "usage_usagerecord_p2019_05"]
    assert partition_of(early.pk) == partition_of(late.pk) == "usage_usagerecord_p2031_07"
    assert partition_of(other.pk) == "usage_usagerecord_p2019_05"
    assert partitions.default_rows() == 0
    assert UsageRecord.objects.count() == 3


@postgresql_only
@pytest.mark.django_db
def test_the_scheduled_job_creates_a_missing_month_once():
    missing = partitions.partition_name(periods.add_months(periods.period_of(timezone.now()), 3))
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {missing}")
        cursor.execute(f"DROP TABLE {missing}")

    assert partitions.create_partitions_ahead() == 1
    assert missing in names()
    assert partitions.create_partitions_ahead() == 0


# --- detach ------------------------------------------------------------------------------


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize("offset", [0, 1, 4])
def test_detach_refuses_the_current_and_future_months(offset):
    now = datetime(2031, 1, 20, tzinfo=UTC)
    partitions.ensure_partitions(months_ahead=4, now=now)
    period = periods.add_months("2031-01", offset)

    with pytest.raises(partitions.PartitionError, match="not a past month"):
        partitions.detach_partition(period, now=now)
    assert partitions.partition_name(period) in names()


@postgresql_only
@pytest.mark.django_db
def test_detach_refuses_a_month_without_partition():
    with pytest.raises(partitions.PartitionError, match="has no partition"):
        partitions.detach_partition("2001-01")


@postgresql_only
def test_detaching_a_past_month_keeps_its_table_and_takes_its_rows_off_the_parent(access):
    partitions.ensure_partitions(months_ahead=1, now=datetime(2020, 2, 1, tzinfo=UTC))
    february = [record(access, datetime(2020, 2, day, tzinfo=UTC)) for day in (1, 15, 29)]
    march = record(access, datetime(2020, 3, 1, tzinfo=UTC))

    name = partitions.detach_partition("2020-02")

    assert name == "usage_usagerecord_p2020_02"
    assert name not in names()
    assert list(UsageRecord.objects.values_list("pk", flat=True)) == [march.pk]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {name} ORDER BY id")  # noqa: S608
        assert [pk for (pk,) in cursor.fetchall()] == [r.pk for r in february]

    # A late record of that month is kept in DEFAULT, never mixed into the archive.
    straggler = record(access, datetime(2020, 2, 20, tzinfo=UTC))
    assert partitions.ensure_partitions(months_ahead=0, now=datetime(2020, 3, 5, tzinfo=UTC)) == []
    assert partition_of(straggler.pk) == partitions.DEFAULT_PARTITION
    with pytest.raises(partitions.PartitionError, match="not attached"):
        partitions.create_partition("2020-02")


@postgresql_only
def test_aggregating_a_detached_month_is_refused_and_keeps_its_summaries(access):
    partitions.ensure_partitions(months_ahead=1, now=datetime(2020, 2, 1, tzinfo=UTC))
    record(access, datetime(2020, 2, 10, 12, tzinfo=UTC))
    record(access, datetime(2020, 3, 1, 12, tzinfo=UTC))
    aggregation.aggregate_range(date(2020, 2, 10), date(2020, 3, 1))
    kept = list(DailyUsageSummary.objects.order_by("date").values_list("date", "total_requests"))
    partitions.detach_partition("2020-02")

    # Its records are not readable any more: re-aggregating would delete the summaries.
    refused = "the usage records of 2020-02 are detached .*usage_partitions --attach 2020-02"
    with pytest.raises(ValueError, match=refused):
        aggregation.aggregate_day(date(2020, 2, 10))
    with pytest.raises(ValueError, match=refused):
        aggregation.aggregate_range(date(2020, 2, 28), date(2020, 3, 1))
    with pytest.raises(CommandError, match="2020-02 are detached"):
        call_command(
            "aggregate_usage", "--from", "2020-02-10", "--to", "2020-02-10", stdout=StringIO()
        )

    assert (
        list(DailyUsageSummary.objects.order_by("date").values_list("date", "total_requests"))
        == kept
        == [(date(2020, 2, 10), 1), (date(2020, 3, 1), 1)]
    )
    # An attached month still aggregates.
    assert aggregation.aggregate_day(date(2020, 3, 1)) == 1


def inherited(partition: str) -> tuple[int, int]:
    """(indexes, primary/unique/foreign keys) of ``partition``, each only if it belongs
    to one of the parent's; raises if the partition has any other."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(i.inhparent) FROM pg_index x "
            "LEFT JOIN pg_inherits i ON i.inhrelid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass",
            [partition],
        )
        indexes, from_parent = cursor.fetchone()
        assert indexes == from_parent
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE conparentid <> 0) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f')",
            [partition],
        )
        keys, from_parent = cursor.fetchone()
        assert keys == from_parent
    return indexes, keys


@postgresql_only
def test_attaching_a_detached_month_brings_its_rows_back_with_the_stragglers(access):
    partitions.ensure_partitions(months_ahead=1, now=datetime(2020, 2, 1, tzinfo=UTC))
    kept = record(access, datetime(2020, 2, 3, tzinfo=UTC))
    partitions.detach_partition("2020-02")
    straggler = record(access, datetime(2020, 2, 20, tzinfo=UTC))

    name = partitions.attach_partition("2020-02")

    assert partition_of(kept.pk) == partition_of(straggler.pk) == name
    assert partitions.default_rows() == 0
    # Exactly the parent's indexes and keys, each tied to the parent's: none built twice.
    assert inherited(name) == inherited(partitions.partition_name("2020-03")) == (7, 6)
    with pytest.raises(partitions.PartitionError, match="already a partition"):
        partitions.attach_partition("2020-02")
    with pytest.raises(partitions.PartitionError, match="no table"):
        partitions.attach_partition("2020-04")


@postgresql_only
@pytest.mark.django_db
def test_a_table_with_rows_outside_its_month_is_not_attached():
    name = partitions.partition_name("2020-05")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
        cursor.execute(
            f"INSERT INTO {name} (id, request_id, access_id, tenant_id, agent_instance_id, "  # noqa: S608
            "plan_id, endpoint, request_method, response_status, response_time_ms, "
            "tokens_input, tokens_output, tokens_total, tokens_estimated, "
            "estimated_cost_cents, currency, billing_period, billable, streamed, partial, "
            "created_at) VALUES (1, 'x', gen_random_uuid(), gen_random_uuid(), "
            "gen_random_uuid(), gen_random_uuid(), 'invoke', 'POST', 200, 1, 0, 0, 0, false, "
            "0, 'USD', '2020-06', true, false, false, '2020-06-01 00:00:00+00')"
        )

    with pytest.raises(IntegrityError, match="violated by some row"):
        partitions.attach_partition("2020-05")


# --- the writer's replay guard -------------------------------------------------------------


def usage_row(access: AgentAccess, request_id: str, at: datetime) -> UsageRow:
    return factories.usage_row_for(access, at=at, request_id=request_id)


@pytest.mark.django_db(transaction=True)
def test_a_retried_batch_is_counted_once():
    access = factories.make_subscription().access
    at = timezone.now()
    batch = [usage_row(access, uuid.uuid4().hex, at), usage_row(access, uuid.uuid4().hex, at)]

    write_batch(batch)
    write_batch(batch)  # the same records again: same ids, same timestamps

    assert UsageRecord.objects.filter(access=access).count() == 2
    access.refresh_from_db()
    assert access.total_requests == 2
    assert access.quota_used == 2


# --- partition pruning ---------------------------------------------------------------------


def plan_of(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


_SCANNED = re.compile(r"\bon (usage_usagerecord_(?:p\d{4}_\d{2}|default))\b")


def scanned(plan: str) -> set[str]:
    """The partitions a plan reads (``… Scan on <partition>``, not index names)."""
    return set(_SCANNED.findall(plan))


@postgresql_only
@pytest.mark.django_db
def test_the_daily_aggregation_reads_only_that_months_partition():
    partitions.ensure_partitions(months_ahead=2, now=datetime(2026, 2, 1, tzinfo=UTC))
    day = date(2026, 3, 10)
    start, end = aggregation.day_bounds(day)
    params = {"day": day, "start": start, "end": end, "p95": 0.95, "now": timezone.now()}

    tables = postgresql.tables()
    with connection.cursor() as cursor:  # the day's groups, as aggregate_day creates them
        postgresql.create_groups_table(cursor, postgresql.DAY_GROUPS, on_commit="DROP")
    # The one statement that reads the records; the upsert and the deletion of stale
    # rows read the groups it computed.
    upsert = plan_of(postgresql.GROUPS_SQL.format(**tables), params)
    stale = plan_of(postgresql.DELETE_STALE_SQL.format(**tables), params)

    assert scanned(upsert) == {"usage_usagerecord_p2026_03"}, upsert
    assert scanned(stale) == set(), stale


@postgresql_only
@pytest.mark.django_db
def test_the_records_api_and_the_export_read_only_the_months_they_ask_for(operator):
    partitions.ensure_partitions(months_ahead=2, now=datetime(2026, 2, 1, tzinfo=UTC))
    visible = selectors.usage_records_visible_to(operator)
    listing = selectors.created_between(
        visible.filter(tenant__slug="acme"),
        selectors.day_start(date(2026, 3, 5)),
        selectors.day_end(date(2026, 4, 2)),
    ).order_by("-created_at", "-id")[:50]
    export = selectors.created_between(visible, *selectors.month_bounds(2026, 2)).order_by(
        "created_at", "id"
    )

    assert scanned(listing.explain()) == {
        "usage_usagerecord_p2026_03",
        "usage_usagerecord_p2026_04",
    }
    assert scanned(export.explain()) == {"usage_usagerecord_p2026_02"}


# --- command -------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("usage_partitions", *args, stdout=out)
    return out.getvalue()


@postgresql_only
@pytest.mark.django_db
def test_command_creates_lists_and_detaches():
    created = run("--ahead", "5")
    listing = run("--list")

    current = periods.period_of(timezone.now())
    fifth = partitions.partition_name(periods.add_months(current, 5))
    assert f"created {fifth}" in created
    assert created.splitlines()[-1].startswith("created ")
    assert "month partitions" in created.splitlines()[-1]
    assert fifth in listing
    assert listing.splitlines()[-1].endswith("DEFAULT holds 0 rows")

    partitions.ensure_partitions(months_ahead=0, now=datetime(2022, 8, 1, tzinfo=UTC))
    detached = run("--detach", "2022-08")
    assert detached.startswith("detached usage_usagerecord_p2022_08")


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detach", "2026-13"], "not a month like 2026-11"),
        (["--detach", "August"], "not a month like 2026-11"),
        (["--detach", "2999-01"], "not a past month"),
        (["--ahead", "-1"], "--ahead must be 0 or more"),
    ],
)
def test_command_refuses_bad_input_with_a_clear_message(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


# --- SQLite ------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.django_db
def test_sqlite_keeps_one_plain_table_and_the_job_does_nothing(access):
    record(access, datetime(2026, 3, 1, tzinfo=UTC))

    assert partitions.is_partitioned() is False
    assert partitions.ensure_partitions() == []
    assert partitions.create_partitions_ahead() == 0
    assert partitions.list_partitions() == []
    with pytest.raises(partitions.PartitionError, match="not partitioned"):
        partitions.detach_partition("2026-01")
    assert "not partitioned on this database (sqlite)" in run()
    with pytest.raises(CommandError, match="not partitioned"):
        run("--detach", "2026-01")


# --- upgrading a populated table -------------------------------------------------------------


def manage(database_url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("REQUIRE_REAL_SERVICES", None)
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def pg(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as db:
        cursor = db.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


INSERT_RECORD = (
    f"INSERT INTO {TABLE} (request_id, access_id, tenant_id, agent_instance_id, plan_id, "  # noqa: S608
    "endpoint, request_method, response_status, response_time_ms, tokens_input, "
    "tokens_output, tokens_total, tokens_estimated, estimated_cost_cents, currency, "
    "billing_period, billable, streamed, partial, created_at) VALUES (%s, %s, %s, %s, %s, "
    "'invoke', 'POST', 200, 1, 0, 0, 0, false, 0, 'USD', '2026-01', true, false, false, %s)"
)


@postgresql_only
def test_migration_0004_converts_a_populated_table_in_place_and_back():
    db = connection.settings_dict
    base = (
        f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    )
    name = f"{db['NAME']}_upgrade"[:63]
    url = f"{base}/{name}"
    pg(f"{base}/postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg(f"{base}/postgres", f'CREATE DATABASE "{name}"')
    try:
        manage(url, "migrate", "--noinput", "--verbosity", "0")
        foreign_keys = (
            manage(
                url,
                "shell",
                "-c",
                "from tests import factories; a = factories.make_subscription().access; "
                "print(a.pk, a.tenant_id, a.agent_instance_id, a.plan_id)",
            )
            .splitlines()[-1]
            .split()
        )
        manage(url, "migrate", "usage", "0003", "--noinput", "--verbosity", "0")
        assert pg(url, "SELECT relkind FROM pg_class WHERE relname = %s", [TABLE]) == [("r",)]
        for request_id, moment in [
            ("a", "2025-12-31 23:59:59.999999+00"),
            ("b", "2026-01-01 00:00:00+00"),
            ("c", "2026-01-20 10:00:00+00"),
        ]:
            pg(url, INSERT_RECORD, [request_id, *foreign_keys, moment])
        before = pg(url, f"SELECT id, request_id FROM {TABLE} ORDER BY id")  # noqa: S608

        manage(url, "migrate", "usage", "--noinput", "--verbosity", "0")

        after = pg(url, f"SELECT id, request_id, tableoid::regclass::text FROM {TABLE} ORDER BY id")  # noqa: S608
        assert [(pk, request_id) for pk, request_id, _ in after] == before
        assert [where for _, _, where in after] == [
            "usage_usagerecord_p2025_12",
            "usage_usagerecord_p2026_01",
            "usage_usagerecord_p2026_01",
        ]
        # The id sequence goes on from where it stood.
        next_id = pg(url, f"SELECT nextval(pg_get_serial_sequence('{TABLE}', 'id'))")
        assert next_id == [(before[-1][0] + 1,)]

        manage(url, "migrate", "usage", "0003", "--noinput", "--verbosity", "0")

        assert pg(url, "SELECT relkind FROM pg_class WHERE relname = %s", [TABLE]) == [("r",)]
        assert pg(url, f"SELECT id, request_id FROM {TABLE} ORDER BY id") == before  # noqa: S608
    finally:
        pg(f"{base}/postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
