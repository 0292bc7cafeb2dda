"""A subscription's ``quota_used`` is 64-bit, as its ``total_requests`` already is."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0003_names_without_invisible_characters"),
    ]

    operations = [
        migrations.AlterField(
            model_name="agentaccess",
            name="quota_used",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
