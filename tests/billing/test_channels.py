"""Billing channels: a finalized statement goes to the channel chosen by settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from agent_registry.access.models import AgentAccess, BillingChannelName
from agent_registry.billing import channels
from agent_registry.billing.channels import FinalizedStatement, NoneChannel, SyncStatus
from agent_registry.billing.cycles import close_cycle, refresh_cycle
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.statements import Statement
from tests import factories
from tests.billing.test_billing_cycles import IN_APRIL, MARCH, MAY_1, aggregate, calls, subscribe


class RecordingChannel:
    """A channel that keeps what it was given (one instance per process, like real ones)."""

    name = "recording"
    pushed: list[FinalizedStatement] = []

    def push_statement(self, finalized: FinalizedStatement) -> None:
        self.pushed.append(finalized)

    def sync_status(self, snapshot) -> SyncStatus:
        return SyncStatus("pending")


RECORDING = {
    "BILLING_CHANNEL": "recording",
    "BILLING_CHANNELS": {
        "none": "agent_registry.billing.channels.NoneChannel",
        "recording": "tests.billing.test_channels.RecordingChannel",
    },
}


@pytest.fixture
def recording():
    RecordingChannel.pushed = []
    with override_settings(**RECORDING):
        yield RecordingChannel.pushed


def test_the_default_channel_is_none_and_sends_nothing():
    channel = channels.channel()

    assert isinstance(channel, NoneChannel)
    assert channel.name == "none"
    assert channel.sync_status(object()).state == "not_applicable"


def test_the_channel_is_built_once_per_process():
    assert channels.channel() is channels.channel()


def test_an_unknown_channel_is_a_configuration_error_and_a_failed_check():
    with override_settings(BILLING_CHANNEL="carrier-pigeon"):
        with pytest.raises(ImproperlyConfigured, match="unknown channel 'carrier-pigeon'"):
            channels.channel()
        [error] = channels.check_channel()

    assert error.id == "billing.E001"
    assert channels.check_channel() == []


def test_a_channel_is_chosen_by_settings(recording):
    assert channels.channel().name == "recording"


@pytest.mark.django_db
def test_each_finalized_statement_goes_to_the_channel_once_committed(
    recording, django_capture_on_commit_callbacks
):
    access = subscribe()
    calls(access, 2)
    aggregate(MARCH)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        close_cycle(MARCH, now=MAY_1)
    assert recording == []  # not before the commit
    for callback in callbacks:
        callback()

    snapshot = TenantQuotaSnapshot.objects.get()
    [finalized] = recording
    assert (finalized.tenant_id, finalized.period, finalized.currency) == (
        access.tenant_id,
        MARCH,
        snapshot.currency,
    )
    assert finalized.statement == Statement.of(snapshot)
    assert finalized.total_cost_cents == snapshot.total_cost_cents


@pytest.mark.django_db
def test_an_open_month_refreshed_goes_nowhere(recording, django_capture_on_commit_callbacks):
    access = subscribe()
    calls(access, 2)
    aggregate(MARCH)

    with django_capture_on_commit_callbacks(execute=True):
        refresh_cycle(MARCH, now=IN_APRIL)
        close_cycle(MARCH, now=datetime(2026, 4, 2, tzinfo=UTC))  # still in its grace

    assert recording == []


class OtherRecordingChannel(RecordingChannel):
    """A second channel, standing in for the one a subscription names (e.g. Waldur)."""

    name = "waldur"
    pushed: list[FinalizedStatement] = []


@pytest.mark.django_db
def test_each_channel_gets_only_the_part_of_a_statement_its_subscriptions_are_billed_by(
    recording, django_capture_on_commit_callbacks
):
    # given one tenant with two subscriptions: one billed through its own channel
    OtherRecordingChannel.pushed = []
    project = factories.ProjectFactory()
    own = subscribe(project=project)
    default = subscribe(project=project)
    AgentAccess.all_objects.filter(pk=own.pk).update(billing_channel=BillingChannelName.WALDUR)
    calls(own, 3)
    calls(default, 5)
    aggregate(MARCH)
    channels_setting = {
        **RECORDING["BILLING_CHANNELS"],
        "waldur": f"{__name__}.OtherRecordingChannel",
    }

    with (
        override_settings(BILLING_CHANNELS=channels_setting),
        django_capture_on_commit_callbacks(execute=True),
    ):
        close_cycle(MARCH, now=MAY_1)

    snapshot = TenantQuotaSnapshot.objects.get()
    [to_default] = recording
    [to_own] = OtherRecordingChannel.pushed
    assert to_own.statement.subscriptions() == {str(own.pk)}
    assert to_default.statement.subscriptions() == {str(default.pk)}
    # every subscription's money in exactly one part, and the parts make the statement
    assert to_own.total_cost_cents + to_default.total_cost_cents == snapshot.total_cost_cents
    assert (to_own.period, to_own.tenant_id) == (MARCH, own.tenant_id)
