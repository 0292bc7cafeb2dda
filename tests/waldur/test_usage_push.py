"""Usage to Waldur: calls → daily summaries → the month's snapshot → ``set_usage`` on the
subscription's Waldur resource, through the real adapter against the fake Waldur.

April 10 is "now": April is the current month, March the previous one.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from prometheus_client import REGISTRY

from agent_registry.access.models import AccessStatus, AgentAccess, BillingChannelName
from agent_registry.access.services import access_revoke
from agent_registry.agents.models import AgentPlan, BillingModel
from agent_registry.billing import channels
from agent_registry.billing.channels import FinalizedStatement
from agent_registry.billing.cycles import close_cycle, refresh_cycle
from agent_registry.billing.models import TenantQuotaSnapshot
from agent_registry.billing.reconciliation import reconcile_period
from agent_registry.billing.statements import Statement
from agent_registry.waldur import jobs, usage_push
from agent_registry.waldur.channel import WaldurChannel
from agent_registry.waldur.client import client_from_settings
from agent_registry.waldur.models import WaldurUsageReport
from agent_registry.waldur.offerings import plan_prices, usage_amounts, waldur_line
from agent_registry.waldur.usage_push import PushResult, push_usage, retry_after
from tests import factories
from tests.admin_support import messages_of, run_action
from tests.billing.test_billing_cycles import aggregate, calls, subscribe
from tests.gateway.conftest import echo_subscription, live_gateway  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

MARCH, APRIL = "2026-03", "2026-04"
NOW = datetime(2026, 4, 10, 12, tzinfo=UTC)
IN_MARCH = datetime(2026, 3, 10, 12, tzinfo=UTC)
IN_APRIL = datetime(2026, 4, 8, 12, tzinfo=UTC)
USAGE_PLAN = {"price_per_call": Decimal("0.0125"), "price_per_1k_tokens": Decimal("0.0004")}


# --- helpers --------------------------------------------------------------------------


def waldur_subscription(waldur, *, state: str = "OK", **plan_fields) -> AgentAccess:
    """A subscription sold through Waldur: billing channel waldur, its resource in the fake."""
    access = subscribe(**(plan_fields or USAGE_PLAN))
    resource = waldur.add_resource(state=state)
    AgentAccess.all_objects.filter(pk=access.pk).update(
        billing_channel=BillingChannelName.WALDUR, waldur_resource_uuid=resource
    )
    access.refresh_from_db()
    return access


def bill(*periods: str, now: datetime = NOW) -> None:
    """The daily aggregation and the hourly cycle refresh, as the scheduled jobs run them."""
    for period in periods:
        aggregate(period)
        refresh_cycle(period, now=now)


def push(now: datetime = NOW, *, force: bool = False, periods=(MARCH, APRIL)) -> PushResult:
    with client_from_settings() as client:
        return push_usage(client=client, periods_=periods, now=now, force=force)


def set_usage_calls(waldur) -> list:
    return [r for r in waldur.requests if r.path.endswith("/set_usage/")]


def entry_of(access, period: str):
    snapshot = TenantQuotaSnapshot.objects.get(tenant=access.tenant, billing_cycle_id=period)
    [entry] = [e for _, e in Statement.of(snapshot).entries() if e.subscription == str(access.pk)]
    return snapshot, entry


def report_of(access, period: str) -> WaldurUsageReport:
    return WaldurUsageReport.objects.get(access=access, period=period)


def sync_count(status: str) -> float:
    labels = {"channel": "waldur", "status": status}
    return REGISTRY.get_sample_value("agent_registry_billing_sync_total", labels) or 0.0


def sync_timings() -> float:
    labels = {"channel": "waldur"}
    return (
        REGISTRY.get_sample_value("agent_registry_billing_sync_duration_seconds_count", labels)
        or 0.0
    )


# --- What is sent ---------------------------------------------------------------------


def test_a_months_calls_reach_waldur_as_the_snapshot_bills_them(waldur):
    # given $0.0125 a call and $0.0004 per 1k tokens: 3 calls of 1,500 tokens, 1 failed
    access = waldur_subscription(waldur)
    calls(access, 3, at=IN_MARCH, tokens=(1000, 500))
    calls(access, 1, at=IN_MARCH, tokens=(10, 0), status=502)
    bill(MARCH)

    result = push(periods=(MARCH,))

    assert (result.sent, result.failed) == (1, 0)
    # billable only: 3 calls and 4,500 tokens, in hundreds, split in the month's
    # input/output proportion (3,010 of 4,510 tokens were input: 4,500 x 3,010 // 4,510)
    held = waldur.usage_of(access.waldur_resource_uuid, MARCH)
    assert held == {"api_calls": "3.00", "input_tokens": "30.03", "output_tokens": "14.97"}
    # exactly offerings.usage_amounts of the snapshot's entry, on the plan it was priced on
    snapshot, entry = entry_of(access, MARCH)
    plan = AgentPlan.all_objects.get(pk=entry.plan)
    assert held == {k: f"{v:.2f}" for k, v in usage_amounts(entry.usage, plan).items()}
    # and what Waldur would invoice for it is the registry's bill (up to a cent a line)
    prices = plan_prices(plan)
    waldur_total = sum(waldur_line(Decimal(held[k]), prices[k]) for k in held)
    assert 0 <= waldur_total * 100 - snapshot.total_cost_cents <= 3
    # sent with a date in March, to the subscription's resource
    [sent] = set_usage_calls(waldur)
    assert sent.json["resource"].replace("-", "") == access.waldur_resource_uuid.hex
    assert sent.json["date"].startswith("2026-03-31")


def test_the_current_and_the_previous_month_are_both_sent(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    calls(access, 5, at=IN_APRIL)
    bill(MARCH, APRIL)

    assert push().sent == 2

    assert waldur.usage_of(access.waldur_resource_uuid, MARCH)["api_calls"] == "2.00"
    assert waldur.usage_of(access.waldur_resource_uuid, APRIL)["api_calls"] == "5.00"
    april = [r for r in set_usage_calls(waldur) if r.json["date"].startswith("2026-04")]
    assert april[0].json["date"].startswith("2026-04-10T12:00")  # now, for the current month


def test_a_subscription_plan_reports_only_the_calls_beyond_its_quota(waldur):
    access = waldur_subscription(
        waldur,
        billing_model=BillingModel.SUBSCRIPTION,
        price_cents=1900,
        monthly_quota=2,
        overage_price_per_call=Decimal("0.05"),
    )
    calls(access, 5, at=IN_MARCH)
    bill(MARCH)

    push(periods=(MARCH,))

    assert waldur.usage_of(access.waldur_resource_uuid, MARCH)["api_calls"] == "3.00"


def test_unchanged_amounts_are_not_sent_again(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH, APRIL)
    push()
    sent_before = len(set_usage_calls(waldur))
    skipped_before = sync_count("skipped")

    again = push()

    assert (again.sent, again.unchanged) == (0, 2)
    assert len(set_usage_calls(waldur)) == sent_before
    assert sync_count("skipped") == skipped_before + 2


def test_a_month_of_zeros_never_sent_is_not_sent(waldur):
    # Waldur holds nothing, i.e. zero: nothing to tell it
    access = waldur_subscription(waldur)
    bill(APRIL)

    result = push(periods=(APRIL,))

    assert (result.sent, result.unchanged) == (0, 1)
    assert set_usage_calls(waldur) == []
    assert report_of(access, APRIL).in_sync


def test_more_usage_overwrites_the_month_with_the_new_total(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    push(periods=(MARCH,))

    calls(access, 3, at=IN_MARCH + timedelta(hours=1))
    bill(MARCH)
    assert push(periods=(MARCH,)).sent == 1

    # the month-to-date total, not an increment; one value per component and month
    assert waldur.usage_of(access.waldur_resource_uuid, MARCH)["api_calls"] == "5.00"
    assert len([k for k in waldur.component_usages if k[1] == "api_calls"]) == 1
    assert report_of(access, MARCH).sent["api_calls"] == "5.00"


def test_usage_of_a_closed_month_recorded_late_is_reported_in_that_month(waldur):
    # March is finalized (past its grace on April 10); 2 more March calls arrive later:
    # the registry bills them as an adjustment line in April, Waldur gets them in March
    access = waldur_subscription(waldur)
    calls(access, 4, at=IN_MARCH)
    aggregate(MARCH)
    close_cycle(MARCH, now=NOW)
    calls(access, 2, at=IN_MARCH + timedelta(hours=2))
    calls(access, 1, at=IN_APRIL)
    aggregate(MARCH)
    bill(APRIL)
    april, _ = entry_of(access, APRIL)
    assert [line.origin_cycle for line in Statement.of(april).adjustments] == [MARCH]

    push()

    assert waldur.usage_of(access.waldur_resource_uuid, MARCH)["api_calls"] == "6.00"
    assert waldur.usage_of(access.waldur_resource_uuid, APRIL)["api_calls"] == "1.00"


def test_a_revoked_subscription_is_still_reported_for_the_months_it_was_active(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    calls(access, 1, at=IN_APRIL)
    access_revoke(access=access, reason="terminated in Waldur")
    AgentAccess.all_objects.filter(pk=access.pk).update(revoked_at=IN_APRIL + timedelta(hours=1))
    bill(MARCH, APRIL)

    assert push().sent == 2

    assert waldur.usage_of(access.waldur_resource_uuid, APRIL)["api_calls"] == "1.00"
    april = [r for r in set_usage_calls(waldur) if r.json["date"].startswith("2026-04")]
    assert april[0].json["date"].startswith("2026-04-08T13:00")  # within its life


def test_subscriptions_not_billed_through_waldur_are_never_sent(waldur):
    plain = subscribe(**USAGE_PLAN)
    calls(plain, 3, at=IN_MARCH)
    bill(MARCH)

    result = push(periods=(MARCH,))

    assert (result.sent, result.unchanged, result.failed) == (0, 0, 0)
    assert set_usage_calls(waldur) == []
    assert not WaldurUsageReport.objects.exists()


# --- Failures, retries, the snapshot's sync state -------------------------------------


def test_a_timeout_is_recorded_counted_and_retried_by_the_next_run(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    waldur.fault, waldur.fault_count = "timeout", 4  # every attempt of one call
    failed_before = sync_count("failed")

    first = push(periods=(MARCH,))

    assert (first.sent, first.failed) == (0, 1)
    report = report_of(access, MARCH)
    assert report.error.startswith("transient: set usage of resource")
    assert "timed out" in report.error
    assert (report.attempts, report.sent) == (1, None)
    snapshot = TenantQuotaSnapshot.objects.get(tenant=access.tenant, billing_cycle_id=MARCH)
    assert (snapshot.synced_to_waldur, snapshot.sync_attempts) == (False, 1)
    assert "transient" in snapshot.sync_error
    assert snapshot.synced_at is None
    assert sync_count("failed") == failed_before + 1

    later = push(NOW + timedelta(hours=1), periods=(MARCH,))

    assert (later.sent, later.failed) == (1, 0)
    report.refresh_from_db()
    assert (report.error, report.attempts, report.sent["api_calls"]) == ("", 0, "2.00")
    snapshot.refresh_from_db()
    assert (snapshot.synced_to_waldur, snapshot.sync_attempts, snapshot.sync_error) == (
        True,
        2,
        "",
    )
    assert snapshot.synced_at == NOW + timedelta(hours=1)
    assert waldur.usage_of(access.waldur_resource_uuid, MARCH)["api_calls"] == "2.00"


def test_repeated_transient_failures_back_off_and_a_push_by_hand_ignores_it(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    waldur.fault = "500"
    push(periods=(MARCH,))
    push(NOW + timedelta(minutes=5), periods=(MARCH,))  # the first retry is the next run
    report = report_of(access, MARCH)
    assert report.attempts == 2
    assert report.next_attempt_at == NOW + timedelta(minutes=5) + retry_after(2)
    waldur.fault = None

    waiting = push(NOW + timedelta(minutes=10), periods=(MARCH,))
    assert (waiting.sent, waiting.deferred) == (0, 1)

    by_hand = push(NOW + timedelta(minutes=10), periods=(MARCH,), force=True)
    assert by_hand.sent == 1
    assert [retry_after(n) for n in (1, 2, 3, 4, 9)] == [
        timedelta(0),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=4),
        timedelta(hours=12),
    ]


def test_a_refusal_is_recorded_and_the_other_subscriptions_are_still_sent(waldur):
    # Waldur takes no usage for a resource still being created: 400
    refused = waldur_subscription(waldur, state="Creating")
    fine = waldur_subscription(waldur)
    calls(refused, 2, at=IN_MARCH)
    calls(fine, 3, at=IN_MARCH)
    bill(MARCH)

    result = push(periods=(MARCH,))

    assert (result.sent, result.failed, result.ok) == (1, 1, False)
    report = report_of(refused, MARCH)
    assert report.error.startswith("permanent: set usage of resource")
    assert "HTTP 400" in report.error
    assert report.next_attempt_at == NOW + timedelta(days=1)
    assert waldur.usage_of(fine.waldur_resource_uuid, MARCH)["api_calls"] == "3.00"
    assert waldur.usage_of(refused.waldur_resource_uuid, MARCH) == {}
    bad = TenantQuotaSnapshot.objects.get(tenant=refused.tenant, billing_cycle_id=MARCH)
    good = TenantQuotaSnapshot.objects.get(tenant=fine.tenant, billing_cycle_id=MARCH)
    assert (bad.synced_to_waldur, good.synced_to_waldur) == (False, True)
    assert str(refused.pk) in bad.sync_error
    assert good.sync_error == ""


def test_waldur_down_stops_the_run_after_a_few_failures_and_the_rest_waits(waldur, monkeypatch):
    accesses = [waldur_subscription(waldur) for _ in range(5)]
    for access in accesses:
        calls(access, 1, at=IN_MARCH)
    bill(MARCH)
    waldur.fault = "500"

    result = push(periods=(MARCH,))

    assert (result.failed, result.deferred, result.ok) == (3, 2, False)
    assert "3 transient failures in a row" in result.stopped


def test_each_send_is_counted_and_timed_by_the_billing_sync_metrics(waldur):
    access = waldur_subscription(waldur)
    calls(access, 1, at=IN_MARCH)
    bill(MARCH)
    success, timings = sync_count("success"), sync_timings()

    push(periods=(MARCH,))

    assert sync_count("success") == success + 1
    assert sync_timings() == timings + 1


# --- The billing channel --------------------------------------------------------------


def test_a_waldur_billed_subscription_goes_to_the_waldur_channel_only():
    project = factories.ProjectFactory()
    through_waldur = subscribe(project=project, **USAGE_PLAN)
    plain = subscribe(project=project, **USAGE_PLAN)
    AgentAccess.all_objects.filter(pk=through_waldur.pk).update(
        billing_channel=BillingChannelName.WALDUR
    )
    calls(through_waldur, 3, at=IN_MARCH)
    calls(plain, 5, at=IN_MARCH)
    bill(MARCH)
    snapshot = TenantQuotaSnapshot.objects.get(billing_cycle_id=MARCH)
    statement = Statement.of(snapshot)
    finalized = FinalizedStatement(
        project.tenant_id, MARCH, snapshot.currency, statement, snapshot.total_cost_cents
    )

    parts = {to.name: part for to, part in channels.route(finalized)}

    assert set(parts) == {"none", "waldur"}
    assert isinstance(channels.get_channel("waldur"), WaldurChannel)
    assert parts["waldur"].statement.subscriptions() == {str(through_waldur.pk)}
    assert parts["none"].statement.subscriptions() == {str(plain.pk)}
    # every subscription's money in exactly one part, and nothing lost
    assert sum(p.total_cost_cents for p in parts.values()) == snapshot.total_cost_cents
    assert parts["waldur"].total_cost_cents == 4  # 3 x 1.25 ¢ = 3.75 → 4 ¢


def test_a_statement_billed_by_one_channel_is_handed_over_whole():
    access = subscribe(**USAGE_PLAN)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    snapshot = TenantQuotaSnapshot.objects.get()
    finalized = FinalizedStatement(
        access.tenant_id, MARCH, "USD", Statement.of(snapshot), snapshot.total_cost_cents
    )

    [(to, part)] = channels.route(finalized)

    assert (to.name, part) == ("none", finalized)


def test_finalizing_a_month_queues_the_push_of_that_tenants_usage(
    waldur, django_capture_on_commit_callbacks
):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    aggregate(MARCH)

    with django_capture_on_commit_callbacks(execute=True):
        close_cycle(MARCH, now=NOW)

    # the task ran eagerly (no broker in the tests): March is in Waldur
    assert waldur.usage_of(access.waldur_resource_uuid, MARCH)["api_calls"] == "2.00"
    snapshot = TenantQuotaSnapshot.objects.get(billing_cycle_id=MARCH)
    assert snapshot.synced_to_waldur
    assert WaldurChannel().sync_status(snapshot).state == "synced"


def test_the_channel_tells_where_a_snapshot_stands(waldur):
    access = waldur_subscription(waldur, state="Creating")
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    snapshot = TenantQuotaSnapshot.objects.get(billing_cycle_id=MARCH)
    channel = WaldurChannel()
    assert channel.sync_status(snapshot).state == "pending"

    push(periods=(MARCH,))
    status = channel.sync_status(snapshot)
    assert status.state == "failed"
    assert "HTTP 400" in status.detail

    waldur.resources[access.waldur_resource_uuid.hex]["state"] = "OK"
    push(periods=(MARCH,), force=True)
    assert channel.sync_status(snapshot).state == "synced"

    plain = subscribe(**USAGE_PLAN)
    calls(plain, 1, at=IN_MARCH)
    bill(MARCH)
    other = TenantQuotaSnapshot.objects.get(tenant=plain.tenant, billing_cycle_id=MARCH)
    assert channel.sync_status(other).state == "not_applicable"


# --- Reconciliation -------------------------------------------------------------------


def waldur_findings(report):
    return [d for d in report.differences if d.check == "waldur"]


def test_reconciliation_reports_what_waldur_holds_differently(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH, tokens=(100, 0))
    bill(MARCH)
    push(periods=(MARCH,))
    assert waldur_findings(reconcile_period(MARCH, now=NOW)) == []
    assert reconcile_period(MARCH, now=NOW).external == (
        "waldur: 1 resources compared, 0 differences"
    )

    # someone changes the amount in Waldur
    key = (access.waldur_resource_uuid.hex, "api_calls", "2026-03-01")
    waldur.component_usages[key]["usage"] = "7.00"
    held_before = dict(waldur.component_usages)

    report = reconcile_period(MARCH, now=NOW)

    [drift] = waldur_findings(report)
    assert drift.subscription == str(access.pk)
    assert drift.tenant == access.tenant.slug
    assert str(access.waldur_resource_uuid) in drift.compared
    assert "api_calls" in drift.compared
    assert drift.expected == {"amount": "2.00", "last_sent": "2.00"}
    assert drift.actual == {"amount": "7.00"}
    assert "waldur_push_usage --period 2026-03" in drift.advice
    assert waldur.component_usages == held_before  # read-only: nothing was changed
    assert "1 differences" in report.external


def test_reconciliation_reports_usage_not_pushed_yet(waldur):
    access = waldur_subscription(waldur)
    calls(access, 3, at=IN_MARCH)
    bill(MARCH)

    [drift] = waldur_findings(reconcile_period(MARCH, now=NOW))

    assert (drift.expected["amount"], drift.actual["amount"]) == ("3.00", "0.00")
    assert drift.advice.startswith("not pushed yet")
    assert access.waldur_resource_uuid


def test_reconciliation_without_waldur_says_nothing_about_it():
    access = subscribe(**USAGE_PLAN)
    calls(access, 1, at=IN_MARCH)
    bill(MARCH)

    report = reconcile_period(MARCH, now=NOW)

    assert report.external == "not integrated (Waldur, Stripe)"


# --- The command, the job, the admin --------------------------------------------------


def test_the_command_pushes_a_month_and_prints_a_summary(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    out = StringIO()

    call_command("waldur_push_usage", "--period", MARCH, stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"sent {MARCH} {access.tenant.slug} {access.pk}")
    assert "api_calls=2.00" in lines[0]
    assert lines[-1] == "waldur_push_usage: 1 sent, 0 unchanged, 0 failed, 0 deferred"
    assert waldur.usage_of(access.waldur_resource_uuid, MARCH)["api_calls"] == "2.00"


def test_the_command_fails_when_a_send_failed(waldur):
    access = waldur_subscription(waldur, state="Creating")
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    err = StringIO()

    with pytest.raises(CommandError, match="0 sent, 0 unchanged, 1 failed"):
        call_command("waldur_push_usage", "--period", MARCH, stdout=StringIO(), stderr=err)
    assert "HTTP 400" in err.getvalue()


def test_the_command_refuses_a_malformed_period(waldur):
    with pytest.raises(CommandError, match="--period"):
        call_command("waldur_push_usage", "--period", "2026-13", stdout=StringIO())


@override_settings(WALDUR_API_URL="")
def test_without_waldur_the_command_and_the_job_do_nothing_and_say_so():
    out = StringIO()

    call_command("waldur_push_usage", stdout=out)

    assert "WALDUR_API_URL is not set" in out.getvalue()
    assert jobs.push_waldur_usage() == {"skipped": "WALDUR_API_URL is not set"}
    assert jobs.SCHEDULE["waldur-push-usage"].when.seconds == 3600


def test_the_job_pushes_and_fails_loudly_when_a_send_failed(waldur):
    access = waldur_subscription(waldur, state="Creating")
    calls(access, 1, at=datetime.now(UTC).replace(day=1, hour=0, minute=5))
    period = datetime.now(UTC).strftime("%Y-%m")
    aggregate(period)
    refresh_cycle(period)

    with pytest.raises(Exception, match="waldur usage push: 0 sent"):
        jobs.push_waldur_usage()

    waldur.resources[access.waldur_resource_uuid.hex]["state"] = "OK"
    report = report_of(access, period)
    report.next_attempt_at = None
    report.save()
    assert jobs.push_waldur_usage()["sent"] == 1


def test_the_admin_retries_a_failed_report_by_hand(waldur, admin_browser):
    access = waldur_subscription(waldur, state="Creating")
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    push(periods=(MARCH,))
    report = report_of(access, MARCH)
    assert report.error
    waldur.resources[access.waldur_resource_uuid.hex]["state"] = "OK"

    response = run_action(admin_browser, WaldurUsageReport, "retry_sync", [report])

    assert any("1 sent" in text for _, text in messages_of(response))
    report.refresh_from_db()
    assert (report.error, report.sent["api_calls"]) == ("", "2.00")
    assert access.status == AccessStatus.ACTIVE


def test_a_push_while_another_runs_does_nothing(waldur):
    # given another process in the middle of a push (it holds the push's advisory lock)
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    held, release = threading.Event(), threading.Event()

    def another_push() -> None:
        with usage_push._one_push_at_a_time() as alone:
            assert alone
            held.set()
            release.wait(10)
        connection.close()

    other = threading.Thread(target=another_push)
    other.start()
    held.wait(10)
    try:
        busy = push(periods=(MARCH,))
    finally:
        release.set()
        other.join()

    assert busy.busy
    assert busy.ok
    assert busy.summary().startswith("another push is running")
    assert set_usage_calls(waldur) == []
    assert push(periods=(MARCH,)).sent == 1  # once it is done


def test_the_snapshot_admin_shows_where_each_statement_stands(waldur, admin_browser):
    refused = waldur_subscription(waldur, state="Creating")
    calls(refused, 2, at=IN_MARCH)
    plain = subscribe(**USAGE_PLAN)
    calls(plain, 1, at=IN_MARCH)
    bill(MARCH)
    push(periods=(MARCH,))
    failed = TenantQuotaSnapshot.objects.get(tenant=refused.tenant)
    other = TenantQuotaSnapshot.objects.get(tenant=plain.tenant)

    assert channels.sync_status(failed).state == "failed"
    assert channels.sync_status(other).state == "not_applicable"
    page = admin_browser.get(f"/admin/billing/tenantquotasnapshot/{failed.pk}/change/")
    assert page.status_code == 200
    assert "HTTP 400" in page.content.decode()
    listing = admin_browser.get("/admin/billing/tenantquotasnapshot/").content.decode()
    assert "failed" in listing


def test_reconciliation_notes_a_statement_that_moved_on_since_a_recent_push(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    push(periods=(MARCH,))
    calls(access, 1, at=IN_MARCH + timedelta(hours=3))
    bill(MARCH)  # the hourly refresh ran after the push
    pushed_at = report_of(access, MARCH).updated_at

    soon = reconcile_period(MARCH, now=max(pushed_at, NOW))

    assert waldur_findings(soon) == []
    [note] = [n for n in soon.notes if n.check == "waldur"]
    assert "holds 2.00 as last sent, the statement says 3.00" in note.message

    # the push never caught up: drift
    later = reconcile_period(MARCH, now=pushed_at + timedelta(hours=3))
    [drift] = waldur_findings(later)
    assert drift.advice.startswith("not pushed yet")


def test_the_reconcile_command_exits_2_on_waldur_drift(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("reconcile_usage", "--period", MARCH, stdout=out)

    assert raised.value.returncode == 2
    assert f"[waldur] statement vs Waldur resource {access.waldur_resource_uuid}" in out.getvalue()
    assert "external: waldur: 1 resources compared, 1 differences" in out.getvalue()


def test_an_unreadable_waldur_answer_is_a_note_not_a_crash(waldur):
    access = waldur_subscription(waldur)
    calls(access, 2, at=IN_MARCH)
    bill(MARCH)
    waldur.fault = "garbage"

    report = reconcile_period(MARCH, now=NOW)

    assert waldur_findings(report) == []
    [note] = [n for n in report.notes if n.check == "waldur"]
    assert "not JSON" in note.message
    assert note.subscription == str(access.pk)


def test_amounts_with_more_than_two_decimals_are_refused_before_sending(waldur):
    resource = waldur.add_resource()
    with client_from_settings() as client:
        with pytest.raises(ValueError, match="more than 2 decimal places"):
            client.set_usage(resource, at=NOW, usages={"api_calls": Decimal("1.005")})
        client.set_usage(resource, at=NOW, usages={"api_calls": Decimal("1.5")})
        [held] = client.component_usages(resource, NOW.date().replace(day=1))

    assert (held.type, held.amount, str(held.billing_period)) == (
        "api_calls",
        Decimal("1.50"),
        "2026-04-01",
    )
    assert [r.json["usages"] for r in set_usage_calls(waldur)] == [
        [{"type": "api_calls", "amount": "1.50"}]
    ]


# --- End to end: calls with the key -----------------------------------------------------


def test_calls_with_a_waldur_billed_key_reach_waldur_through_the_whole_chain(
    waldur,
    live_gateway,  # noqa: F811
    echo_subscription,  # noqa: F811
):
    # given a subscription sold through Waldur (as an order would leave it)
    access = echo_subscription.access
    resource = waldur.add_resource()
    AgentAccess.all_objects.filter(pk=access.pk).update(
        billing_channel=BillingChannelName.WALDUR, waldur_resource_uuid=resource
    )
    # when the customer calls the agent with its key three times
    with live_gateway.client(echo_subscription.api_key) as client:
        for _ in range(3):
            answer = client.post("/api/v1/agents/echo/invoke", json={"input": "hello"})
            assert answer.status_code == 200, answer.text
    # and the daily aggregation and the hourly cycle refresh run, then the hourly push
    period = datetime.now(UTC).strftime("%Y-%m")
    aggregate(period)
    refresh_cycle(period)
    assert jobs.push_waldur_usage()["sent"] == 1

    # then Waldur holds the month-to-date totals the registry bills
    access.refresh_from_db()
    _, entry = entry_of(access, period)
    assert entry.usage.billable_calls == 3
    held = waldur.usage_of(resource, period)
    assert held["api_calls"] == "3.00"
    assert held == {
        kind: f"{amount:.2f}"
        for kind, amount in usage_amounts(
            entry.usage, AgentPlan.all_objects.get(pk=entry.plan)
        ).items()
    }


def test_the_fake_answers_with_waldurs_own_component_usage_fields(waldur):
    # the generated model keeps unknown keys in additional_properties: none may be left
    from waldur_api_client.models.component_usage import ComponentUsage

    resource = waldur.add_resource()
    with client_from_settings() as client:
        client.set_usage(resource, at=NOW, usages={"api_calls": Decimal("2.00")})
    [item] = waldur.component_usages.values()

    parsed = ComponentUsage.from_dict(item)

    assert parsed.additional_properties == {}
    assert (parsed.type_, str(parsed.billing_period)) == ("api_calls", "2026-04-01")
