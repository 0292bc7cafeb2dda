"""Seed the load test's throwaway database through the project's own services; write
what the Locust users need (tokens, keys, ids) as JSON.

Run with ``DJANGO_SETTINGS_MODULE=agent_registry.settings`` and ``DATABASE_URL`` /
``REDIS_URL`` pointing at the load test's own database and Redis db (``__main__.py``
does). What it makes:

* ``--vendors`` provider tenants with ``--agents`` ACTIVE agents each, all on the
  in-process ``echo`` runtime (no upstream: the load is on the registry, not on a
  fake), each with three plans:
  - ``Free``: free, no quota, 100,000 calls/s (what customers subscribe to themselves);
  - ``Metered``: pay per use (0.001 a call), no quota, 100,000 calls/s (an operator's
    subscription: a member subscribing to a paid plan gets 402 without Stripe);
  - ``Trial``: free, 2 calls/s per subscription, the source of the *intended* 429s.
* ``--customers`` customer tenants, each with an owner holding an API token (the
  management API's ``Token`` auth, scoped to that tenant by membership), a shared
  project with three subscriptions and their keys (Free, Metered, Trial on different
  agents), and ``--slots`` / customers projects of their own, one per Locust user, where
  that user subscribes and unsubscribes (one user per project: no two subscribe races).

    python -m bench.load.setup_data --out var/bench-load/data.json
"""

from __future__ import annotations

import argparse
import json
import os
from decimal import Decimal

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, help="where to write the data (JSON)")
    parser.add_argument("--vendors", type=int, default=4)
    parser.add_argument("--agents", type=int, default=5, help="agents per vendor")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--slots", type=int, default=1100, help="projects, one per user")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")
    django.setup()

    from agent_registry.access.services import access_create
    from agent_registry.agents.models import AgentState, BillingModel
    from agent_registry.agents.runtime import RuntimeDescription
    from agent_registry.agents.services import agent_create, agent_transition, plan_create
    from agent_registry.core import keys
    from agent_registry.core.identifiers import user_get_or_create
    from agent_registry.core.models import OperatorToken
    from agent_registry.tenants.models import TenantRole
    from agent_registry.tenants.services import membership_set, project_create, tenant_create

    categories = ["support", "sales", "research", "coding", "writing"]
    unlimited = {"monthly_quota": None, "rate_limit_per_second": 100_000}
    agents = []
    for v in range(args.vendors):
        vendor = tenant_create(
            name=f"Load vendor {v}", slug=f"load-vendor-{v}", max_agents=args.agents
        )
        project = project_create(tenant=vendor, name="Agents")
        for a in range(args.agents):
            agent_id = f"load-{v}-{a}"
            agent = agent_create(
                project=project,
                agent_id=agent_id,
                name=f"Load agent {v}.{a}",
                runtime=RuntimeDescription(type="echo"),
                category=categories[(v + a) % len(categories)],
                tags=["load", f"vendor-{v}"],
                description=f"An echo agent of vendor {v}, for the load test.",
                max_concurrent_requests=2000,
                timeout_seconds=30,
            )
            for state in (AgentState.DEPLOYED, AgentState.LISTED, AgentState.ACTIVE):
                agent = agent_transition(agent=agent, to_state=state, reason="load test setup")
            plans = {
                "free": plan_create(
                    agent=agent, name="Free", billing_model=BillingModel.FREE, **unlimited
                ),
                "metered": plan_create(
                    agent=agent,
                    name="Metered",
                    billing_model=BillingModel.USAGE,
                    price_per_call=Decimal("0.001"),
                    **unlimited,
                ),
                "trial": plan_create(
                    agent=agent,
                    name="Trial",
                    billing_model=BillingModel.FREE,
                    monthly_quota=None,
                    rate_limit_per_second=2,
                ),
            }
            agents.append({"agent": agent, "plans": plans})

    customers = []
    slots_per_customer = -(-args.slots // args.customers)
    for c in range(args.customers):
        tenant = tenant_create(name=f"Load customer {c}", slug=f"load-customer-{c}")
        username = f"load-owner-{c}"
        user, _ = user_get_or_create(username)
        membership_set(tenant=tenant, username=username, role=TenantRole.OWNER)
        token = keys.issue_key(keys.OPERATOR_TOKEN_KIND)
        OperatorToken.objects.create(
            user=user, name="load", token_prefix=token.prefix, token_hash=token.hash
        )
        shared = project_create(tenant=tenant, name="Shared app")
        subscriptions = {}
        for offset, kind in enumerate(("free", "metered", "trial")):
            target = agents[(c * 3 + offset) % len(agents)]
            issued = access_create(
                agent=target["agent"],
                plan=target["plans"][kind],
                project=shared,
                name=f"load {kind}",
            )
            subscriptions[kind] = {
                "agent_id": target["agent"].agent_id,
                "subscription": str(issued.access.pk),
                "api_key": issued.api_key,
            }
        projects = [
            str(project_create(tenant=tenant, name=f"User {c}.{s}").pk)
            for s in range(slots_per_customer)
        ]
        customers.append(
            {
                "tenant": tenant.slug,
                "token": token.plaintext,
                "subscriptions": subscriptions,
                "projects": projects,
            }
        )

    data = {
        "agents": [
            {
                "agent_id": a["agent"].agent_id,
                "category": a["agent"].category,
                "free_plan": str(a["plans"]["free"].pk),
            }
            for a in agents
        ],
        "categories": categories,
        "customers": customers,
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(data, out)


if __name__ == "__main__":
    main()
