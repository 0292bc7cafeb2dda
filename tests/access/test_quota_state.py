"""Customers see the quota the gateway enforces: its counter, not the database's copy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.access.selectors import access_live_quota_used
from agent_registry.core import periods
from agent_registry.core.live_state import live_state
from agent_registry.gateway.limits import get_limiter
from tests import factories

pytestmark = pytest.mark.django_db


def set_counter(access, value: int) -> None:
    """What the gateway's admissions leave behind (Redis, or the embedded limiter)."""

    async def write():
        limiter = get_limiter()
        await limiter.set_quota_used(str(access.pk), periods.period_of(datetime.now(UTC)), value)
        if hasattr(limiter, "aclose"):
            await limiter.aclose()

    asyncio.run(write())


@pytest.fixture
def subscription(project):
    issued = factories.make_subscription(project=project, monthly_quota=100)
    AgentAccess.objects.filter(pk=issued.access.pk).update(
        quota_used=3, quota_reset_at=periods.next_month_start(datetime.now(UTC))
    )
    return issued.access


def shown(client, access) -> dict:
    return client.get(f"/api/v1/subscriptions/{access.pk}/").json()


def test_the_gateway_counter_is_what_the_customer_sees(member_client, subscription):
    # 5 calls admitted, 2 of them still in flight: the database has 3, the gateway 5
    set_counter(subscription, 5)

    body = shown(member_client("viewer"), subscription)

    assert (body["quota_used"], body["quota_remaining"]) == (5, 95)


def test_without_a_counter_the_database_count_of_this_month_is_shown(member_client, subscription):
    body = shown(member_client("viewer"), subscription)

    assert (body["quota_used"], body["quota_remaining"]) == (3, 97)


def test_a_count_left_from_a_month_that_ended_is_not_shown(member_client, subscription):
    # the month turned, no call yet, and reset_quotas has not run
    AgentAccess.objects.filter(pk=subscription.pk).update(
        quota_reset_at=datetime.now(UTC) - timedelta(minutes=1)
    )

    body = shown(member_client("viewer"), subscription)

    assert (body["quota_used"], body["quota_remaining"]) == (0, 100)


def test_a_page_of_subscriptions_reads_every_counter(member_client, project, subscription):
    other = factories.make_subscription(project=project, monthly_quota=10).access
    set_counter(subscription, 40)
    set_counter(other, 10)

    rows = member_client("viewer").get("/api/v1/subscriptions/").json()["results"]

    by_id = {row["id"]: (row["quota_used"], row["quota_remaining"]) for row in rows}
    assert by_id == {str(subscription.pk): (40, 60), str(other.pk): (10, 0)}


def test_a_page_of_subscriptions_reads_its_counters_in_one_round_trip(
    member_client, project, subscription, monkeypatch
):
    factories.make_subscription(project=project, monthly_quota=10)
    state = live_state()
    reads = []
    real_read = state.quota_counters

    def counting_read(access_ids, period):
        access_ids = list(access_ids)
        reads.append(access_ids)
        return real_read(access_ids, period)

    monkeypatch.setattr(state, "quota_counters", counting_read)

    rows = member_client("viewer").get("/api/v1/subscriptions/").json()["results"]

    assert len(rows) == 2
    assert [len(ids) for ids in reads] == [2]


def test_an_unreachable_counter_store_falls_back_to_the_database(settings, subscription):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    assert access_live_quota_used([subscription.pk]) == {}
