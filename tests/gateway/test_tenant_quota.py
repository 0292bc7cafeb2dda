"""The tenant's monthly_api_calls_limit, end to end: all its subscriptions together."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import openai
import pytest

from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.core import periods
from agent_registry.gateway.limits import get_limiter
from agent_registry.tenants.services import tenant_update
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.gateway.test_invoke import assert_error, invoke
from tests.waiting import wait_until


def tenant_counter(tenant) -> int | None:
    limiter = get_limiter()

    async def read():
        try:
            period = periods.period_of(datetime.now(UTC))
            return await limiter.tenant_quota_used(str(tenant.pk), period)
        finally:
            await limiter.aclose()

    return asyncio.run(read())


def subscriptions_of_one_tenant(count: int, *, limit: int | None, agent_id: str = "echo"):
    """``count`` subscriptions (each in its own project, each with a roomy quota) of one
    tenant whose monthly_api_calls_limit is ``limit``."""
    tenant = factories.TenantFactory(monthly_api_calls_limit=limit)
    agent = factories.make_agent(agent_id=agent_id, max_concurrent_requests=50)
    return tenant, [
        factories.make_subscription(
            project=factories.ProjectFactory(tenant=tenant),
            agent=agent,
            monthly_quota=100,
            rate_limit_per_second=1000,
        )
        for _ in range(count)
    ]


def test_the_tenant_limit_refuses_across_subscriptions_with_its_code_and_headers(
    live_gateway, transactional_db
):
    tenant, (first, second) = subscriptions_of_one_tenant(2, limit=3)

    statuses = [invoke(live_gateway, issued.api_key).status_code for issued in (first, second)]
    last = invoke(live_gateway, first.api_key)
    refused = invoke(live_gateway, second.api_key)

    assert statuses == [200, 200]
    assert last.headers["X-Tenant-Quota-Limit"] == "3"
    assert last.headers["X-Tenant-Quota-Remaining"] == "0"
    assert_error(refused, 429, "tenant_quota_exceeded")
    seconds_to_reset = (
        periods.next_month_start(datetime.now(UTC)).timestamp() - datetime.now(UTC).timestamp()
    )
    assert abs(int(refused.headers["Retry-After"]) - seconds_to_reset) <= 5
    assert refused.headers["X-RateLimit-Limit"] == "1000"
    assert refused.headers["X-Quota-Limit"] == "100"
    assert refused.headers["X-Quota-Remaining"] == "99"  # this subscription used 1
    assert refused.headers["X-Tenant-Quota-Remaining"] == "0"
    assert UsageRecord.objects.filter(tenant=tenant).count() == 3


def test_the_openai_surface_answers_tenant_quota_exceeded_too(live_gateway, transactional_db):
    _, [issued] = subscriptions_of_one_tenant(1, limit=1)
    client = openai.OpenAI(base_url=f"{live_gateway.url}/v1", api_key=issued.api_key, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="echo", messages=messages)

    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="echo", messages=messages)

    assert refused.value.body["code"] == "tenant_quota_exceeded"
    assert refused.value.response.headers["X-Tenant-Quota-Remaining"] == "0"
    assert int(refused.value.response.headers["Retry-After"]) > 0
    assert refused.value.response.headers["X-RateLimit-Limit"] == "1000"


def test_calls_already_recorded_this_month_count_toward_the_limit(live_gateway, transactional_db):
    tenant, (first, second) = subscriptions_of_one_tenant(2, limit=3)
    now = datetime.now(UTC)
    factories.make_usage_record(first.access, at=now)
    factories.make_usage_record(second.access, at=now)
    factories.make_usage_record(second.access, at=now, status=502)  # not billable: not counted
    factories.make_usage_record(second.access, at=periods.month_start(now).replace(year=2020))

    assert invoke(live_gateway, first.api_key).status_code == 200
    assert_error(invoke(live_gateway, second.api_key), 429, "tenant_quota_exceeded")
    assert tenant_counter(tenant) == 3


def test_a_call_the_runtime_fails_gives_its_tenant_unit_back(live_gateway, transactional_db):
    tenant = factories.TenantFactory(monthly_api_calls_limit=1)
    broken = factories.make_agent(
        agent_id="broken",
        runtime=RuntimeDescription(type="http", endpoint="http://127.0.0.1:1/run"),
    )
    issued = factories.make_subscription(
        project=factories.ProjectFactory(tenant=tenant), agent=broken, monthly_quota=100
    )

    first = invoke(live_gateway, issued.api_key, agent_id="broken")
    second = invoke(live_gateway, issued.api_key, agent_id="broken")

    assert_error(first, 502, "runtime_error")
    assert_error(second, 502, "runtime_error")  # admitted again: the unit came back
    # The gateway gives a unit back after answering (finish_later): wait for the second.
    wait_until(lambda: tenant_counter(tenant) == 0, what="the second call's unit back")


def test_a_limit_set_through_the_api_applies_to_the_next_call(
    live_gateway, transactional_db, operator_client
):
    tenant, [issued] = subscriptions_of_one_tenant(1, limit=None)
    assert invoke(live_gateway, issued.api_key).status_code == 200  # snapshot now cached

    response = operator_client.patch(
        f"/api/v1/tenants/{tenant.slug}/", {"monthly_api_calls_limit": 2}, format="json"
    )

    assert response.status_code == 200, response.content
    assert invoke(live_gateway, issued.api_key).status_code == 200  # 1 recorded + 1
    assert_error(invoke(live_gateway, issued.api_key), 429, "tenant_quota_exceeded")

    tenant_update(tenant=tenant, monthly_api_calls_limit=None)
    assert invoke(live_gateway, issued.api_key).status_code == 200


def test_raising_the_limit_keeps_the_count(live_gateway, transactional_db):
    tenant, [issued] = subscriptions_of_one_tenant(1, limit=1)
    assert invoke(live_gateway, issued.api_key).status_code == 200
    assert_error(invoke(live_gateway, issued.api_key), 429, "tenant_quota_exceeded")

    tenant_update(tenant=tenant, monthly_api_calls_limit=2)

    assert invoke(live_gateway, issued.api_key).status_code == 200
    assert_error(invoke(live_gateway, issued.api_key), 429, "tenant_quota_exceeded")


def test_a_count_that_cannot_be_made_refuses_with_503_not_500(
    live_gateway, transactional_db, monkeypatch
):
    from django.db import OperationalError

    from agent_registry.gateway import tenant_quota

    async def database_down(tenant_id, period):
        raise OperationalError("the database is gone")

    monkeypatch.setattr(tenant_quota, "_count", database_down)
    _, [issued] = subscriptions_of_one_tenant(1, limit=5)

    assert_error(invoke(live_gateway, issued.api_key), 503, "limiter_unavailable")
