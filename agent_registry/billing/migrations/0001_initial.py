"""``BillingCycle`` and ``TenantQuotaSnapshot`` move from the ``usage`` app to ``billing``.

State only: the tables stay where ``usage`` migration 0003 created them
(``usage_billingcycle``, ``usage_tenantquotasnapshot``, kept by ``db_table``), so no row
moves and nothing is locked. ``usage`` migration 0008 removes the models from usage's
state after this one has added them here.

The two content types are relabelled from ``usage`` to ``billing`` (a row update), so
the permissions granted on them (``usage.view_tenantquotasnapshot`` becomes
``billing.view_tenantquotasnapshot``) and admin history follow the models instead of
being left on stale content types.
"""

import django.db.models.deletion
from django.db import migrations, models

_MODELS = ("billingcycle", "tenantquotasnapshot")


def _relabel(apps, schema_editor, source: str, target: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    rows = content_type.objects.using(schema_editor.connection.alias)
    for model in _MODELS:
        if rows.filter(app_label=target, model=model).exists():
            continue  # already made (post_migrate ran for the new label): keep that one
        rows.filter(app_label=source, model=model).update(app_label=target)


def content_types_to_billing(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, "usage", "billing")


def content_types_to_usage(apps, schema_editor) -> None:
    _relabel(apps, schema_editor, "billing", "usage")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("tenants", "0003_tenant_invitations"),
        ("usage", "0007_usage_tokens_64_bit"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="BillingCycle",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "billing_cycle_id",
                            models.CharField(help_text="YYYY-MM, UTC", max_length=7, unique=True),
                        ),
                        ("is_finalized", models.BooleanField(default=False)),
                        ("finalized_at", models.DateTimeField(blank=True, null=True)),
                        ("refreshed_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "snapshots",
                            models.PositiveIntegerField(
                                default=0, help_text="Tenant snapshots written."
                            ),
                        ),
                        (
                            "total_cost_cents",
                            models.JSONField(
                                default=dict,
                                help_text="Currency → total of every snapshot, in minor units.",
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "usage_billingcycle",
                        "ordering": ["-billing_cycle_id"],
                    },
                ),
                migrations.CreateModel(
                    name="TenantQuotaSnapshot",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "billing_cycle_id",
                            models.CharField(help_text="YYYY-MM, UTC", max_length=7),
                        ),
                        ("currency", models.CharField(max_length=3)),
                        ("period_start", models.DateField()),
                        ("period_end", models.DateField(help_text="First day after the cycle.")),
                        ("total_api_calls", models.PositiveBigIntegerField(default=0)),
                        ("billable_api_calls", models.PositiveBigIntegerField(default=0)),
                        ("total_tokens_input", models.PositiveBigIntegerField(default=0)),
                        ("total_tokens_output", models.PositiveBigIntegerField(default=0)),
                        ("total_tokens", models.PositiveBigIntegerField(default=0)),
                        ("usage_cost_cents", models.BigIntegerField(default=0)),
                        ("adjustments_cost_cents", models.BigIntegerField(default=0)),
                        ("total_cost_cents", models.BigIntegerField(default=0)),
                        ("usage_by_agent", models.JSONField(default=dict)),
                        ("adjustments", models.JSONField(default=list)),
                        ("refreshed_at", models.DateTimeField()),
                        ("is_finalized", models.BooleanField(default=False)),
                        ("finalized_at", models.DateTimeField(blank=True, null=True)),
                        ("synced_to_waldur", models.BooleanField(default=False)),
                        ("synced_at", models.DateTimeField(blank=True, null=True)),
                        ("sync_attempts", models.PositiveIntegerField(default=0)),
                        ("sync_error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "tenant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="quota_snapshots",
                                to="tenants.agenttenant",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "usage_tenantquotasnapshot",
                        "ordering": ["-billing_cycle_id", "tenant_id", "currency"],
                        "indexes": [
                            models.Index(
                                fields=["billing_cycle_id", "is_finalized"], name="snapshot_cycle"
                            )
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("tenant", "billing_cycle_id", "currency"),
                                name="quota_snapshot_unique_cycle",
                            )
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(content_types_to_billing, content_types_to_usage),
    ]
