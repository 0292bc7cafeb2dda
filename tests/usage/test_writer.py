"""The usage writer's batch: records in, subscription counters advanced, once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.core import periods
from agent_registry.usage.models import UsageRecord
from agent_registry.usage.writer import UsageRow, write_batch
from tests import factories

pytestmark = pytest.mark.django_db


def row(access, *, at: datetime, billable: bool = True) -> UsageRow:
    return factories.usage_row_for(access, at=at, billable=billable)


@pytest.fixture
def access():
    access = factories.make_subscription().access
    now = datetime.now(UTC)
    AgentAccess.objects.filter(pk=access.pk).update(
        quota_used=0, total_requests=0, quota_reset_at=periods.next_month_start(now)
    )
    return access


def counters(access) -> tuple[int, int]:
    fresh = AgentAccess.objects.get(pk=access.pk)
    return fresh.total_requests, fresh.quota_used


def test_a_batch_counts_calls_and_billable_calls(access):
    now = datetime.now(UTC)

    write_batch([row(access, at=now), row(access, at=now), row(access, at=now, billable=False)])

    assert UsageRecord.objects.filter(access=access).count() == 3
    assert counters(access) == (3, 2)


def test_a_batch_written_twice_counts_once(access):
    batch = [row(access, at=datetime.now(UTC)) for _ in range(2)]

    write_batch(batch)
    write_batch(batch)

    assert UsageRecord.objects.filter(access=access).count() == 2
    assert counters(access) == (2, 2)


def test_a_call_of_a_month_before_the_quota_period_does_not_use_its_quota(access):
    # a call at 23:59:59.999 last month whose batch commits after the period rolled
    boundary = periods.month_start(datetime.now(UTC))
    late = row(access, at=boundary - timedelta(milliseconds=1))

    write_batch([late, row(access, at=boundary + timedelta(seconds=1))])

    assert counters(access) == (2, 1)  # both recorded and counted as calls


# A batch of one row takes its own statement on PostgreSQL (VALUES, not unnest):
# the same rules must hold for it.


def test_a_batch_of_one_is_recorded_and_counted(access):
    write_batch([row(access, at=datetime.now(UTC))])
    write_batch([row(access, at=datetime.now(UTC), billable=False)])

    assert UsageRecord.objects.filter(access=access).count() == 2
    assert counters(access) == (2, 1)


def test_a_single_row_written_twice_counts_once(access):
    call = row(access, at=datetime.now(UTC))

    write_batch([call])
    write_batch([call])

    assert UsageRecord.objects.filter(access=access).count() == 1
    assert counters(access) == (1, 1)


def test_a_single_call_of_the_month_before_the_quota_period_uses_no_quota(access):
    boundary = periods.month_start(datetime.now(UTC))

    write_batch([row(access, at=boundary - timedelta(milliseconds=1))])

    assert counters(access) == (1, 0)


def test_a_single_row_keeps_every_field(access):
    call = row(access, at=datetime.now(UTC))

    write_batch([call])

    stored = UsageRecord.objects.get(request_id=call.request_id)
    assert (stored.tokens_input, stored.tokens_output, stored.tokens_total) == (
        call.tokens_input,
        call.tokens_output,
        call.tokens_input + call.tokens_output,
    )
    assert stored.estimated_cost_cents == call.estimated_cost_cents
    assert stored.created_at == call.created_at
    assert stored.billing_period == periods.period_of(call.created_at)


@pytest.mark.parametrize("batch_size", [1, 3], ids=["single row", "batch"])
def test_a_failed_calls_detail_is_stored_with_it(access, batch_size):
    now = datetime.now(UTC)
    failed = dataclasses.replace(
        row(access, at=now, billable=False), error_detail="the HTTP runtime answered HTTP 500"
    )

    write_batch([failed] + [row(access, at=now) for _ in range(batch_size - 1)])

    details = dict(UsageRecord.objects.values_list("request_id", "error_detail"))
    assert details.pop(failed.request_id) == "the HTTP runtime answered HTTP 500"
    assert set(details.values()) <= {""}
