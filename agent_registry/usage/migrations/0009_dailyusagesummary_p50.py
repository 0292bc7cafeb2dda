# The median latency of each summary row. Rows computed before it stay null until their
# day is aggregated again (the records are partitioned and large: no backfill here;
# `manage.py aggregate_usage --from … --to …` refills any range).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0008_billing_models_move_to_billing"),
    ]

    operations = [
        migrations.AddField(
            model_name="dailyusagesummary",
            name="p50_response_time_ms",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
