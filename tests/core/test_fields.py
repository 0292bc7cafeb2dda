"""A collation for PostgreSQL only: the embedded SQLite file stays readable by any tool."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connection
from django.db.utils import ConnectionHandler

from agent_registry.usage.models import UsageRecord


@pytest.mark.django_db  # PostgreSQL's column types depend on the server version
def test_request_id_is_compared_by_bytes_on_postgresql_and_declared_plainly_elsewhere():
    field = UsageRecord._meta.get_field("request_id")

    assert field.db_collation == "C"  # the model state, the same on every backend
    expected = "C" if connection.vendor == "postgresql" else None
    assert field.db_parameters(connection)["collation"] == expected


def test_a_plain_sqlite_tool_can_query_usage_records_by_request_id(django_db_blocker):
    # a SQLite connection of its own (in memory), whatever the suite runs on
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )
    sqlite = handler["default"]
    with django_db_blocker.unblock(), sqlite.schema_editor(collect_sql=True) as editor:
        editor.create_model(UsageRecord)
    sqlite.close()
    ddl = [statement for statement in editor.collected_sql if "usage_usagerecord" in statement]
    assert ddl
    assert not any('COLLATE "C"' in statement for statement in ddl)

    # the table as SQLite gets it, in a connection that knows nothing of Django
    outside = sqlite3.connect(":memory:")
    for table in ("access_agentaccess", "tenants_agenttenant", "agents_agentinstance"):
        outside.execute(f"CREATE TABLE {table} (id char(32) PRIMARY KEY)")
    outside.execute("CREATE TABLE agents_agentplan (id char(32) PRIMARY KEY)")
    for statement in ddl:
        outside.execute(statement)
    rows = outside.execute("SELECT count(*) FROM usage_usagerecord WHERE request_id = 'x'")
    assert rows.fetchall() == [(0,)]
