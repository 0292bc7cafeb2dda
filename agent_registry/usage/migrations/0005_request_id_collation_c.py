"""``UsageRecord.request_id`` in the "C" collation (docs/usage-storage.md).

Request ids are hex/ASCII, so ordering them by bytes loses nothing, and the index of
``usage_request_unique`` (``request_id, created_at``) is about twice as cheap to build
and to keep up as under the database's default collation (strcoll per comparison).

PostgreSQL: ``ALTER COLUMN … TYPE varchar(64) COLLATE "C"`` on the partitioned parent,
which recurses to every attached partition. The column's type does not change, so no
table is rewritten, but the indexes on ``request_id`` (``usage_request_unique`` on every
partition) are rebuilt under an ACCESS EXCLUSIVE lock: on a large table, run it in a
maintenance window. A partition detached at that time keeps its old collation and gets
it again when attached (``attach_partition`` builds the parent's indexes).

SQLite has no collation named "C" (its default, BINARY, already compares bytes): the
operation only changes the model state there.
"""

from __future__ import annotations

from django.db import migrations, models


class AlterFieldOnPostgreSQL(migrations.AlterField):
    """``AlterField`` whose database side runs on PostgreSQL only."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0004_partition_usage_records"),
    ]

    operations = [
        AlterFieldOnPostgreSQL(
            model_name="usagerecord",
            name="request_id",
            field=models.CharField(db_collation="C", db_index=True, max_length=64),
        ),
    ]
