"""``BillingCycle`` and ``TenantQuotaSnapshot`` now belong to the ``billing`` app.

State only: billing migration 0001 took them over with their tables as they are, so
this drops them from usage's state and touches no table.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0007_usage_tokens_64_bit"),
        ("billing", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="BillingCycle"),
                migrations.DeleteModel(name="TenantQuotaSnapshot"),
            ],
        ),
    ]
