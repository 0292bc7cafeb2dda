"""The flush after a transactional test, without its two slow steps, on PostgreSQL.

Django empties every table with one TRUNCATE, then sends ``post_migrate`` so that its
receivers write their rows again (content types, permissions, beat's schedules). On
this schema that is close to a second per transactional test — about two minutes of
the suite — for a few dozen rows: the TRUNCATE makes new files for every table, index
and usage partition, and ``post_migrate`` runs its queries app by app.

This flush ends in the same state, faster. The first one is Django's own; what it
leaves (the rows ``post_migrate`` wrote, nothing else) is copied into the schema
``SNAPSHOT``. Every later flush, in one transaction: locks every table as TRUNCATE
would (so it still waits for a straggling writer's transaction, and takes its rows
too), deletes every row, and copies the snapshot back in. The receivers only write
rows, so the copy is what they would write again (with the ids of the first time,
which only keeps the content-type cache right).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connections, transaction
from django.test import TransactionTestCase

SNAPSHOT = "test_flush_snapshot"


class Flush:
    def __init__(self) -> None:
        # Per database alias: the tables whose rows the snapshot holds, once taken.
        self.snapshots: dict[str, list[str]] = {}

    def teardown(self, case: TransactionTestCase, django_flush: Callable[[], None]) -> None:
        """``TransactionTestCase._fixture_teardown`` for a test of the default kind."""
        aliases = case._databases_names(include_mirrors=False)
        if any(connections[alias].vendor != "postgresql" for alias in aliases):
            django_flush()
            return
        for alias in aliases:
            if alias in self.snapshots:
                self.restore(alias)
            else:
                django_flush_one(alias)
                self.snapshots[alias] = self.take(alias)

    def take(self, alias: str) -> list[str]:
        connection = connections[alias]
        quote = connection.ops.quote_name
        kept = []
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {SNAPSHOT} CASCADE")
            cursor.execute(f"CREATE SCHEMA {SNAPSHOT}")
            for table in tables(alias):
                cursor.execute(f"SELECT EXISTS (SELECT FROM {quote(table)})")  # noqa: S608
                if cursor.fetchone()[0]:
                    copy = f"{SNAPSHOT}.{quote(table)}"
                    cursor.execute(f"CREATE TABLE {copy} AS TABLE {quote(table)}")
                    kept.append(table)
        return kept

    def restore(self, alias: str) -> None:
        from django.contrib.contenttypes.models import ContentType

        connection = connections[alias]
        quote = connection.ops.quote_name
        everything = tables(alias)
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(
                f"LOCK TABLE {', '.join(quote(t) for t in everything)} IN ACCESS EXCLUSIVE MODE"
            )
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table in everything:
                cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608
            for table in self.snapshots[alias]:
                cursor.execute(
                    f"INSERT INTO {quote(table)} SELECT * FROM {SNAPSHOT}.{quote(table)}"  # noqa: S608
                )
        ContentType.objects.clear_cache()  # as post_migrate's create_contenttypes does


def tables(alias: str) -> list[str]:
    """The tables Django's flush empties: every model's, in INSTALLED_APPS."""
    introspection = connections[alias].introspection
    return sorted(introspection.django_table_names(only_existing=True, include_views=False))


def django_flush_one(alias: str) -> None:
    from django.core.management import call_command

    call_command(
        "flush",
        verbosity=0,
        interactive=False,
        database=alias,
        reset_sequences=False,
        allow_cascade=False,
        inhibit_post_migrate=False,
    )


@contextmanager
def installed() -> Iterator[None]:
    """Route transactional tests' flushes through ``Flush`` while the block runs."""
    flush = Flush()
    original = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self: TransactionTestCase) -> None:
        # The variants that flush a subset or restore serialized data stay Django's.
        if self.available_apps is not None or self.serialized_rollback:
            original(self)
            return
        flush.teardown(self, lambda: original(self))

    TransactionTestCase._fixture_teardown = _fixture_teardown  # type: ignore[method-assign]
    try:
        yield
    finally:
        TransactionTestCase._fixture_teardown = original  # type: ignore[method-assign]
