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

SQLite has no "C" collation and compares bytes already: the field
(``core.fields.PostgresCollationCharField``) declares none there.
"""

from __future__ import annotations

from django.db import migrations

import agent_registry.core.fields


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0004_partition_usage_records"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usagerecord",
            name="request_id",
            field=agent_registry.core.fields.PostgresCollationCharField(
                db_collation="C", db_index=True, max_length=64
            ),
        ),
    ]
