"""``manage.py seed_demo``: the embedded demo, created once and left alone afterwards.

A tenant and project, an active ``echo-demo`` agent on the built-in echo runtime with
three plans (free, pay as you go, a monthly subscription), an admin login, and a demo
subscription on the pay-as-you-go plan. For the portal (/portal/): a provider login
(``demo-provider``, admin of the tenant that provides ``echo-demo``) and a customer login
(``demo-customer``, owner of the customer tenant ``acme`` with a project of its own);
they are added to a demo seeded before the portal existed, too. Secrets made here
(the admin password, the demo API key, an operator token) are written once to
``var/demo-credentials.txt`` (mode 600) and printed on every run; ``var/demo.env`` has
the same values as ``export NAME=value`` lines, for ``. var/demo.env`` in a shell.
"""

from __future__ import annotations

import os
import secrets
import shlex
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from agent_registry.access.services import access_create
from agent_registry.agents.models import BillingModel
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.agents.services import agent_create, agent_run_action, plan_create
from agent_registry.core import keys
from agent_registry.core.identifiers import user_by_username, user_get_or_create
from agent_registry.core.models import OperatorToken
from agent_registry.tenants.models import AgentTenant, TenantRole
from agent_registry.tenants.services import membership_set, project_create, tenant_create

CREDENTIALS_FILE = Path(settings.VAR_DIR) / "demo-credentials.txt"
SHELL_FILE = Path(settings.VAR_DIR) / "demo.env"


def _write_secret_file(path: Path, text: str) -> None:
    # Created readable by the owner only, so the secrets are never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(path, 0o600)


def _write_credentials(values: dict[str, str]) -> None:
    _write_secret_file(CREDENTIALS_FILE, "".join(f"{k}={v}\n" for k, v in values.items()))
    _write_secret_file(
        SHELL_FILE, "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())
    )


class Command(BaseCommand):
    help = "Seed the demo tenant, agent, plans and logins (idempotent)."

    def handle(self, *args, **options):
        with transaction.atomic():
            created = self._seed()
            logins = self._seed_portal_logins()
        if created:
            _write_credentials(created | logins)
            self.stdout.write(self.style.SUCCESS("Demo data created."))
        elif logins:
            saved = CREDENTIALS_FILE.read_text().splitlines() if CREDENTIALS_FILE.exists() else []
            _write_credentials(dict(line.split("=", 1) for line in saved if "=" in line) | logins)
            self.stdout.write(self.style.SUCCESS("Portal logins added to the demo."))
        else:
            if CREDENTIALS_FILE.exists() and not SHELL_FILE.exists():
                # A demo seeded before var/demo.env existed gets it from its credentials.
                saved = CREDENTIALS_FILE.read_text().splitlines()
                _write_credentials(dict(line.split("=", 1) for line in saved if "=" in line))
            self.stdout.write("Demo data already present; left unchanged.")

    def _seed_portal_logins(self) -> dict[str, str]:
        """A provider and a customer who log in to the portal with a password."""
        demo = AgentTenant.all_objects.filter(slug="demo").first()
        if demo is None or user_by_username("demo-customer") is not None:
            return {}
        out: dict[str, str] = {}
        customer_tenant = AgentTenant.all_objects.filter(slug="acme").first() or tenant_create(
            name="Acme Customer", slug="acme", monthly_api_calls_limit=100_000, max_agents=10
        )
        if not customer_tenant.projects.exists():
            project_create(tenant=customer_tenant, name="Acme website")
        for username, tenant, role, prefix in (
            ("demo-provider", demo, TenantRole.ADMIN, "PROVIDER"),
            ("demo-customer", customer_tenant, TenantRole.OWNER, "CUSTOMER"),
        ):
            password = secrets.token_urlsafe(12)
            user, _ = user_get_or_create(username, email=f"{username}@demo.example")
            user.set_password(password)
            user.save()
            membership_set(tenant=tenant, username=username, role=role)
            out[f"{prefix}_USERNAME"] = username
            out[f"{prefix}_PASSWORD"] = password
        return out

    def _seed(self) -> dict[str, str]:
        if AgentTenant.all_objects.filter(slug="demo").exists():
            return {}
        secrets_out: dict[str, str] = {}
        admin_password = secrets.token_urlsafe(12)
        admin, _ = user_get_or_create("admin")
        admin.is_staff = admin.is_superuser = True
        admin.set_password(admin_password)
        admin.save()
        secrets_out["ADMIN_USERNAME"] = "admin"
        secrets_out["ADMIN_PASSWORD"] = admin_password

        issued_token = keys.issue_key(keys.OPERATOR_TOKEN_KIND)
        OperatorToken.objects.create(
            user=admin, name="demo", token_prefix=issued_token.prefix, token_hash=issued_token.hash
        )
        secrets_out["OPERATOR_TOKEN"] = issued_token.plaintext

        tenant = tenant_create(
            name="Demo Customer", slug="demo", monthly_api_calls_limit=100_000, max_agents=10
        )
        project = project_create(tenant=tenant, name="Default")
        user_get_or_create("demo-owner", email="owner@demo.example")
        membership_set(
            tenant=tenant, username="demo-owner", role=TenantRole.OWNER, email="owner@demo.example"
        )

        agent = agent_create(
            project=project,
            agent_id="echo-demo",
            name="Echo demo agent",
            description="Answers with what you send it. Built in; no outside service needed.",
            category="demo",
            tags=["demo", "echo"],
            runtime=RuntimeDescription(type="echo"),
            actor=admin,
        )
        for action in ("deploy", "publish", "activate"):
            agent = agent_run_action(agent=agent, action=action, actor=admin, reason="demo seed")
        plan_create(
            agent=agent,
            name="Free",
            billing_model=BillingModel.FREE,
            monthly_quota=1_000,
            rate_limit_per_second=5,
            display_order=1,
        )
        pay_as_you_go = plan_create(
            agent=agent,
            name="Pay as you go",
            billing_model=BillingModel.USAGE,
            price_per_call=Decimal("0.002"),
            price_per_1k_tokens=Decimal("0.0004"),
            monthly_quota=1_000,
            rate_limit_per_second=5,
            display_order=2,
        )
        plan_create(
            agent=agent,
            name="Pro",
            billing_model=BillingModel.SUBSCRIPTION,
            price_cents=1900,
            monthly_quota=100_000,
            overage_price_per_call=Decimal("0.001"),
            rate_limit_per_second=50,
            display_order=3,
        )
        # On the metered plan, so every demo call shows up with a price in the usage
        # records, the daily summaries and the month's billing snapshot.
        issued = access_create(
            agent=agent, plan=pay_as_you_go, project=project, name="Demo key", actor=admin
        )
        secrets_out["DEMO_SUBSCRIPTION_ID"] = str(issued.access.id)
        secrets_out["DEMO_API_KEY"] = issued.api_key
        return secrets_out
