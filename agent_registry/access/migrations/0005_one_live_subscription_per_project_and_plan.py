# A project subscribes once to a plan: a unique constraint over its live (not revoked,
# not deleted) subscriptions.

from django.db import migrations, models
from django.db.models import Count, Q


def refuse_existing_duplicates(apps, schema_editor):
    """Name the duplicates instead of failing on an opaque IntegrityError.

    Which of two live subscriptions to revoke is the customer's choice (each has its
    own key in use), so the migration does not pick one.
    """
    AgentAccess = apps.get_model("access", "AgentAccess")
    duplicates = (
        AgentAccess.objects.filter(deleted_at__isnull=True)
        .exclude(status="revoked")
        .values("project_id", "agent_instance_id", "plan_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    if duplicates:
        listed = "; ".join(
            f"project {d['project_id']}, plan {d['plan_id']}: {d['n']}" for d in duplicates[:20]
        )
        raise RuntimeError(
            "Projects with more than one live subscription to the same plan (revoke the "
            f"extra ones, then migrate again): {listed}"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0004_quota_used_64_bit"),
        ("agents", "0002_plan_overage_price"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(refuse_existing_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="agentaccess",
            constraint=models.UniqueConstraint(
                condition=~Q(status="revoked") & Q(deleted_at__isnull=True),
                fields=("project", "agent_instance", "plan"),
                name="one_live_subscription_per_project_and_plan",
            ),
        ),
    ]
