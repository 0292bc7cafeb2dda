"""Create the benchmark's data through the project's own services; write it as JSON.

Run with ``DJANGO_SETTINGS_MODULE=agent_registry.settings`` and ``DATABASE_URL`` /
``REDIS_URL`` pointing at the bench's own database and Redis db (the orchestrator in
``__main__.py`` does). Two agents, each with a subscription and an API key:

* ``bench-http`` — ``http`` runtime on the fast upstream (throughput runs);
* ``bench-stream`` — ``openai`` runtime on the same upstream's slow SSE stream (soak).

Both get plans no limit will stop: unlimited quota (still counted, as in production),
100,000 calls/s (the model's maximum) and 2,000 concurrent requests per agent.

    python -m bench.gateway.setup_data --upstream http://127.0.0.1:18001 --out keys.json
"""

from __future__ import annotations

import argparse
import json
import os
from decimal import Decimal

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:<port>")
    parser.add_argument("--out", required=True, help="where to write the keys (JSON)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")
    django.setup()

    from agent_registry.access.services import access_create
    from agent_registry.agents.models import AgentState, BillingModel
    from agent_registry.agents.runtime import RuntimeDescription
    from agent_registry.agents.services import agent_create, agent_transition, plan_create
    from agent_registry.tenants.services import project_create, tenant_create

    vendor = tenant_create(name="Bench vendor", slug="bench-vendor")
    vendor_project = project_create(tenant=vendor, name="Agents")
    customer = tenant_create(name="Bench customer", slug="bench-customer")
    customer_project = project_create(tenant=customer, name="Calls")

    def agent_with_key(agent_id: str, runtime: RuntimeDescription) -> dict[str, str]:
        agent = agent_create(
            project=vendor_project,
            agent_id=agent_id,
            name=agent_id,
            runtime=runtime,
            max_concurrent_requests=2000,
            timeout_seconds=30,
        )
        for state in (AgentState.DEPLOYED, AgentState.LISTED, AgentState.ACTIVE):
            agent = agent_transition(agent=agent, to_state=state, reason="benchmark setup")
        plan = plan_create(
            agent=agent,
            name="Bench",
            billing_model=BillingModel.USAGE,
            price_per_call=Decimal("0.001"),
            monthly_quota=None,
            rate_limit_per_second=100_000,
        )
        issued = access_create(agent=agent, plan=plan, project=customer_project, name="bench")
        return {"agent_id": agent.agent_id, "api_key": issued.api_key}

    data = {
        "http": agent_with_key(
            "bench-http", RuntimeDescription(type="http", endpoint=f"{args.upstream}/run")
        ),
        "stream": agent_with_key(
            "bench-stream",
            RuntimeDescription(type="openai", endpoint=f"{args.upstream}/v1", model="bench-slow"),
        ),
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(data, out)


if __name__ == "__main__":
    main()
