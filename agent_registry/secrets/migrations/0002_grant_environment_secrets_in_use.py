"""Existing agents keep working: grant each tenant the environment secrets its agents use.

Before runtime secrets belonged to tenants, ``api_key_ref: "NAME"`` read
``RUNTIME_SECRET_NAME`` for any agent. Every (tenant, NAME) pair a live agent already
references becomes an explicit ``EnvironmentSecretGrant`` (docs/secrets.md, "Upgrading"),
so nothing changes for them; no other tenant gains access. Operators should review these
grants and move tenants to their own secrets. Reversing drops only the grants made here.
"""

import re

from django.db import migrations

NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
NOTE = "Granted by migration 0002: an agent of this tenant used it before tenant-scoped secrets."


def grant_references_in_use(apps, schema_editor):
    AgentInstance = apps.get_model("agents", "AgentInstance")
    Grant = apps.get_model("secrets", "EnvironmentSecretGrant")
    pairs = set(
        AgentInstance.objects.filter(deleted_at__isnull=True)
        .exclude(state="retired")
        .exclude(runtime_api_key_ref="")
        .values_list("project__tenant_id", "runtime_api_key_ref")
    )
    for tenant_id, name in sorted(pairs, key=lambda pair: (str(pair[0]), pair[1])):
        if NAME.match(name):
            Grant.objects.get_or_create(tenant_id=tenant_id, name=name, defaults={"note": NOTE})


def drop_migrated_grants(apps, schema_editor):
    apps.get_model("secrets", "EnvironmentSecretGrant").objects.filter(note=NOTE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("secrets", "0001_runtime_secrets"),
        ("agents", "0002_plan_overage_price"),
    ]

    operations = [migrations.RunPython(grant_references_in_use, drop_migrated_grants)]
