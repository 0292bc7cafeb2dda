"""SQLite connections, made to accept what the PostgreSQL schema declares.

``UsageRecord.request_id`` is declared in the "C" collation (byte order; cheaper
indexes on PostgreSQL). SQLite has no collation of that name, so any table rebuild
that SQLite's schema editor does (every ``AlterField`` on that table) would fail on
``COLLATE "C"``. Registering it as plain byte order, which is what SQLite's own
BINARY collation does, keeps such migrations working on the embedded default.
"""

from __future__ import annotations

from typing import Any


def _byte_order(left: str, right: str) -> int:
    left_bytes, right_bytes = left.encode(), right.encode()
    return (left_bytes > right_bytes) - (left_bytes < right_bytes)


def register_collations(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: add the "C" collation to SQLite connections."""
    if connection.vendor == "sqlite":
        connection.connection.create_collation("C", _byte_order)
