"""The embedded default's SQLite accepts the "C" collation the schema declares."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

from agent_registry.core.sqlite import register_collations


def test_sqlite_connections_get_a_c_collation_in_byte_order():
    raw = sqlite3.connect(":memory:")
    register_collations(sender=None, connection=SimpleNamespace(vendor="sqlite", connection=raw))

    raw.execute('CREATE TABLE ids (value TEXT COLLATE "C")')
    raw.executemany("INSERT INTO ids VALUES (?)", [("b",), ("B",), ("a",), ("é",)])
    ordered = [row[0] for row in raw.execute("SELECT value FROM ids ORDER BY value")]

    assert ordered == ["B", "a", "b", "é"]


def test_other_databases_are_left_alone():
    untouched = SimpleNamespace(vendor="postgresql", connection=None)

    register_collations(sender=None, connection=untouched)  # would fail on None if it tried
