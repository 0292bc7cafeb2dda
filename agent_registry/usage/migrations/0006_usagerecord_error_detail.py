"""Usage records keep why a runtime call failed (``error_detail``), for the provider.

A database default as well as Django's: a gateway process still running the previous
code inserts rows without the column during a rolling deploy, and they must not fail.
On PostgreSQL adding a column with a constant default only changes the catalogue, so
the partitioned table is not rewritten.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0005_request_id_collation_c"),
    ]

    operations = [
        migrations.AddField(
            model_name="usagerecord",
            name="error_detail",
            field=models.CharField(blank=True, db_default="", default="", max_length=500),
        ),
    ]
