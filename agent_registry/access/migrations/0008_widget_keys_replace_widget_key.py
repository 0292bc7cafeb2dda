"""Each subscription's single ``AgentConfiguration.widget_key`` becomes a row of the
widget's own keys (widget/models.py ``WidgetKey``), with the same ``agw_…`` value, so
embeds already pasted keep working; then the column goes.

Reversible: going back puts each subscription's oldest active widget key (or a fresh
one) into the column again.
"""

import secrets

from django.db import migrations, models


def to_widget_keys(apps, schema_editor):
    AgentConfiguration = apps.get_model("access", "AgentConfiguration")
    WidgetKey = apps.get_model("widget", "WidgetKey")
    rows = AgentConfiguration.objects.exclude(widget_key__isnull=True).exclude(widget_key="")
    existing = set(WidgetKey.objects.values_list("key", flat=True))
    WidgetKey.objects.bulk_create(
        [
            WidgetKey(
                access_id=configuration.access_id,
                key=configuration.widget_key,
                name="Migrated from the configuration's widget key",
            )
            for configuration in rows.iterator()
            if configuration.widget_key not in existing
        ],
        batch_size=1000,
    )


def from_widget_keys(apps, schema_editor):
    AgentConfiguration = apps.get_model("access", "AgentConfiguration")
    WidgetKey = apps.get_model("widget", "WidgetKey")
    for configuration in AgentConfiguration.objects.iterator():
        kept = (
            WidgetKey.objects.filter(access_id=configuration.access_id, revoked_at__isnull=True)
            .order_by("created_at")
            .first()
        )
        configuration.widget_key = kept.key if kept else "agw_" + secrets.token_urlsafe(18)
        configuration.save(update_fields=["widget_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0007_training_documents"),
        ("widget", "0001_initial"),
    ]

    operations = [
        # Nullable first, so that going back can add the column before filling it.
        migrations.AlterField(
            model_name="agentconfiguration",
            name="widget_key",
            field=models.CharField(max_length=40, unique=True, null=True),
        ),
        migrations.RunPython(to_widget_keys, from_widget_keys),
        migrations.RemoveField(model_name="agentconfiguration", name="widget_key"),
    ]
