"""Create the usage benchmark's catalogue (bulk_create) and write it as JSON.

Run with ``DATABASE_URL`` pointing at the bench's own database (``__main__.py`` does):
10 vendor tenants with 5 agents each, three plans per agent (free; $19/month with a
quota and overage; pay per use at $0.002/call + $0.0004/1k tokens, a tenth of the
agents priced in EUR), ``--tenants`` customer tenants and ``--subscriptions``
subscriptions spread evenly over them, each on a random agent and plan. Every
subscription was created two months before the benchmarked month, so it is active the
whole month. The month's partition is left to the loader.

    python -m bench.usage.setup_data --tenants 500 --subscriptions 2000 --period 2026-10 \
        --out var/bench-usage/catalogue.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
from datetime import timedelta
from decimal import Decimal

import django

VENDORS = 10
AGENTS_PER_VENDOR = 5
PLAN_SHARE = {"free": 0.3, "subscription": 0.3, "usage": 0.4}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--subscriptions", type=int, required=True)
    parser.add_argument("--period", required=True, help="YYYY-MM")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")
    django.setup()

    from django.db import transaction

    from agent_registry.access.models import AccessStatus, AgentAccess
    from agent_registry.agents.models import (
        AgentInstance,
        AgentPlan,
        AgentState,
        BillingModel,
        RuntimeType,
    )
    from agent_registry.core import keys, periods
    from agent_registry.tenants.models import AgentProject, AgentTenant

    rng = random.Random(args.seed)
    month_start = periods.period_start(args.period)
    with transaction.atomic():
        vendors = AgentTenant.objects.bulk_create(
            AgentTenant(name=f"Vendor {n}", slug=f"vendor-{n}") for n in range(VENDORS)
        )
        vendor_projects = AgentProject.objects.bulk_create(
            AgentProject(tenant=tenant, name="Agents") for tenant in vendors
        )
        agents = AgentInstance.objects.bulk_create(
            AgentInstance(
                agent_id=f"agent-{v}-{n}",
                name=f"Agent {v}.{n}",
                project=project,
                state=AgentState.ACTIVE,
                runtime_type=RuntimeType.ECHO,
            )
            for v, project in enumerate(vendor_projects)
            for n in range(AGENTS_PER_VENDOR)
        )
        plans: dict[str, list] = {model: [] for model in PLAN_SHARE}
        for index, agent in enumerate(agents):
            currency = "EUR" if index % 10 == 9 else "USD"
            plans["free"].append(
                AgentPlan(
                    agent=agent,
                    name="Free",
                    billing_model=BillingModel.FREE,
                    currency=currency,
                    monthly_quota=1000,
                )
            )
            plans["subscription"].append(
                AgentPlan(
                    agent=agent,
                    name="Pro",
                    billing_model=BillingModel.SUBSCRIPTION,
                    currency=currency,
                    price_cents=1900,
                    monthly_quota=100_000,
                    overage_price_per_call=Decimal("0.002"),
                )
            )
            plans["usage"].append(
                AgentPlan(
                    agent=agent,
                    name="Metered",
                    billing_model=BillingModel.USAGE,
                    currency=currency,
                    price_per_call=Decimal("0.002"),
                    price_per_1k_tokens=Decimal("0.0004"),
                )
            )
        for group in plans.values():
            AgentPlan.objects.bulk_create(group)
        customers = AgentTenant.objects.bulk_create(
            AgentTenant(name=f"Customer {n}", slug=f"customer-{n}") for n in range(args.tenants)
        )
        projects = AgentProject.objects.bulk_create(
            AgentProject(tenant=tenant, name="Default") for tenant in customers
        )
        accesses = []
        models, weights = zip(*PLAN_SHARE.items(), strict=True)
        taken: set[tuple[int, int]] = set()
        for n in range(args.subscriptions):
            project = projects[n % len(projects)]
            plan = rng.choice(plans[rng.choices(models, weights)[0]])
            while (id(project), id(plan)) in taken:  # a project subscribes once to a plan
                plan = rng.choice(plans[rng.choices(models, weights)[0]])
            taken.add((id(project), id(plan)))
            issued = keys.issue_key()
            accesses.append(
                AgentAccess(
                    tenant=project.tenant,
                    project=project,
                    agent_instance=plan.agent,
                    plan=plan,
                    name=f"bench {n}",
                    key_prefix=issued.prefix,
                    key_hash=issued.hash,
                    status=AccessStatus.ACTIVE,
                    quota_limit=plan.monthly_quota,
                )
            )
        AgentAccess.objects.bulk_create(accesses)
        # auto_now_add stamped "now"; the subscriptions predate the month.
        AgentAccess.objects.update(created_at=month_start - timedelta(days=60))

    catalogue = {
        "period": args.period,
        "subscriptions": [
            {
                "access": str(access.pk),
                "tenant": str(access.tenant_id),
                "agent": str(access.agent_instance_id),
                "plan": str(access.plan_id),
                "billing_model": access.plan.billing_model,
                "currency": access.plan.currency,
                "price_per_call": str(access.plan.price_per_call),
                "price_per_1k_tokens": str(access.plan.price_per_1k_tokens),
            }
            for access in accesses
        ],
        "tenant_slugs": [tenant.slug for tenant in customers],
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(catalogue, out)


if __name__ == "__main__":
    main()
