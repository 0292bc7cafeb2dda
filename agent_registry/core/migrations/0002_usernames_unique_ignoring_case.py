"""Usernames are unique ignoring case: "Alice" cannot be created beside "alice".

The users table is django.contrib.auth's, so the constraint is a unique expression
index made here (the same statement on SQLite and PostgreSQL). It fails if the table
already holds two usernames differing only in case: rename one first (docs/domain.md).
"""

from django.conf import settings
from django.db import migrations


def _table(apps) -> str:
    app_label, model_name = settings.AUTH_USER_MODEL.split(".")
    return apps.get_model(app_label, model_name)._meta.db_table


def create_index(apps, schema_editor):
    table = schema_editor.quote_name(_table(apps))
    schema_editor.execute(
        f"CREATE UNIQUE INDEX user_username_unique_ignoring_case ON {table} (LOWER(username))"
    )


def drop_index(apps, schema_editor):
    schema_editor.execute("DROP INDEX user_username_unique_ignoring_case")


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
