"""Quota periods roll over at the month boundary; the database follows the gateway."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from agent_registry.access.models import AgentAccess
from agent_registry.usage.quotas import quota_roll_periods
from tests import factories
from tests.usage.test_records_api import record

pytestmark = pytest.mark.django_db

DECEMBER_2ND = datetime(2026, 12, 2, 9, tzinfo=UTC)


def test_an_ended_period_restarts_from_the_calls_already_made_in_the_new_month():
    access = factories.make_subscription().access
    AgentAccess.objects.filter(pk=access.pk).update(
        quota_used=980, quota_reset_at=datetime(2026, 12, 1, tzinfo=UTC)
    )
    record(access, datetime(2026, 11, 30, 23, tzinfo=UTC))  # last month: not counted
    record(access, datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    record(access, datetime(2026, 12, 1, 8, tzinfo=UTC))
    record(access, datetime(2026, 12, 1, 9, tzinfo=UTC), billable=False)

    rolled = quota_roll_periods(now=DECEMBER_2ND)

    access.refresh_from_db()
    assert rolled == 1
    assert access.quota_used == 2
    assert access.quota_reset_at == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_period_still_running_is_left_alone_and_a_second_run_changes_nothing():
    running = factories.make_subscription().access
    AgentAccess.objects.filter(pk=running.pk).update(
        quota_used=7, quota_reset_at=datetime(2027, 1, 1, tzinfo=UTC)
    )

    assert quota_roll_periods(now=DECEMBER_2ND) == 0
    assert quota_roll_periods(now=DECEMBER_2ND) == 0
    running.refresh_from_db()
    assert running.quota_used == 7


def test_the_command_reports_what_it_did():
    out = StringIO()

    call_command("reset_quotas", stdout=out)

    assert out.getvalue().startswith("rolled 0 subscription(s) into the current quota period")


def test_the_command_shows_its_progress_over_the_subscriptions_it_rolls():
    for _ in range(2):
        access = factories.make_subscription().access
        AgentAccess.objects.filter(pk=access.pk).update(
            quota_used=5, quota_reset_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
    out = StringIO()

    call_command("reset_quotas", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].endswith("2/2 subscriptions")
    assert lines[-1].startswith("rolled 2 subscription(s) into the current quota period")
