"""A usage record's token counts are 64-bit (``bigint``), as the summaries' already are.

A runtime may report up to ``GATEWAY_MAX_TOKENS_PER_CALL`` tokens; int4 would refuse a
record past 2,147,483,647. PostgreSQL: ``ALTER COLUMN … TYPE bigint`` on the partitioned
parent recurses to every attached partition and rewrites them under an ACCESS EXCLUSIVE
lock: on a large table, run it in a maintenance window (docs/usage-storage.md). The
writer's statement casts to the model's column types, so it follows by itself.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0006_usagerecord_error_detail"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usagerecord",
            name="tokens_input",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="tokens_output",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="tokens_total",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
