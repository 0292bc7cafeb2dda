"""The usage writer's batch: records in, subscription counters advanced, once."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from agent_registry.access.models import AgentAccess
from agent_registry.core import periods
from agent_registry.usage.models import UsageRecord
from agent_registry.usage.writer import UsageRow, UsageWriteFailed, UsageWriter, write_batch
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


# --- One bad row never fails the batch it was grouped with -----------------------------


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.real_services), "sqlite"]
)
@pytest.mark.parametrize(
    "bad_tokens",
    [pytest.param(2**63, id="past 64 bits"), pytest.param(-1, id="negative (a CHECK)")],
)
@pytest.mark.django_db(transaction=True)
def test_a_bad_row_fails_only_its_own_caller_and_its_batch_commits(backend, bad_tokens):
    if connection.vendor != backend:
        pytest.skip(f"runs on {backend}")
    # Given calls of two tenants grouped in one batch, one of them a row the database refuses
    now = datetime.now(UTC)
    ours, theirs = factories.make_subscription().access, factories.make_subscription().access
    good = [row(theirs, at=now) for _ in range(5)] + [row(ours, at=now) for _ in range(2)]
    bad = replace(row(ours, at=now), tokens_input=bad_tokens)
    batch = [*good[:3], bad, *good[3:]]
    writer = UsageWriter()

    # When they are written together
    async def write_all():
        return await asyncio.gather(*(writer.record(r) for r in batch), return_exceptions=True)

    outcomes = asyncio.run(write_all())

    # Then only the bad row's caller hears of a failure, and every good row is counted
    assert [isinstance(o, UsageWriteFailed) for o in outcomes] == [r is bad for r in batch]
    written = set(UsageRecord.objects.values_list("request_id", flat=True))
    assert written == {r.request_id for r in good}
    assert counters(AgentAccess.objects.get(pk=theirs.pk))[0] == 5
    assert counters(AgentAccess.objects.get(pk=ours.pk))[0] == 2


@pytest.mark.django_db(transaction=True)
def test_token_counts_past_32_bits_are_stored():
    access = factories.make_subscription().access
    big = replace(row(access, at=datetime.now(UTC)), tokens_input=3_000_000_000)

    asyncio.run(UsageWriter().record(big))

    record = UsageRecord.objects.get(request_id=big.request_id)
    assert (record.tokens_input, record.tokens_total) == (3_000_000_000, 3_000_000_002)
