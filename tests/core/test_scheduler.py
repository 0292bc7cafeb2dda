"""Scheduled jobs: one schedule (core/jobs.py, usage's jobs from usage/jobs.py), run by
Celery beat in production and by the in-process scheduler in the embedded default, on
the same times."""

from __future__ import annotations

import asyncio
import sys
import types
from datetime import UTC, date, datetime, timedelta, timezone
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal
from django.test import override_settings
from django.utils.module_loading import import_string
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from hypothesis import given
from hypothesis import strategies as st

from agent_registry.billing.stripe import jobs as stripe_jobs
from agent_registry.celery import app as celery_app
from agent_registry.core import beat
from agent_registry.core import jobs as schedule
from agent_registry.core import scheduler as scheduler_module
from agent_registry.core.jobs import DailyAt, Every, Job
from agent_registry.core.scheduler import InProcessScheduler
from agent_registry.usage import jobs, tasks
from agent_registry.usage.models import DailyUsageSummary
from agent_registry.waldur import jobs as waldur_jobs
from tests import factories
from tests.usage.test_records_api import record

START = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
calls: list[str] = []


def job_a():
    calls.append("a")


def job_broken():
    raise RuntimeError("boom")


# --- the in-process scheduler -------------------------------------------------------------


@pytest.mark.django_db  # the scheduler recycles stale database connections between jobs
def test_interval_jobs_run_at_start_then_once_per_interval_and_a_failure_stops_no_other():
    calls.clear()
    scheduler = InProcessScheduler(
        {
            "broken": Job(job_broken, Every(60), "fails"),
            "a": Job(job_a, Every(60), "works"),
        },
        started=START,
    )

    first = scheduler.run_due(START)
    too_soon = scheduler.run_due(START + timedelta(seconds=30))
    later = scheduler.run_due(START + timedelta(seconds=61))

    assert first == ["broken", "a"]
    assert too_soon == []
    assert later == ["broken", "a"]
    assert calls == ["a", "a"]


@pytest.mark.django_db
def test_a_daily_job_waits_for_its_time_of_day_and_then_runs_once_a_day():
    calls.clear()
    scheduler = InProcessScheduler({"a": Job(job_a, DailyAt(0, 15), "")}, started=START)

    at_start = scheduler.run_due(START)
    just_before = scheduler.run_due(datetime(2026, 3, 11, 0, 14, 59, tzinfo=UTC))
    on_time = scheduler.run_due(datetime(2026, 3, 11, 0, 15, 3, tzinfo=UTC))
    same_day_later = scheduler.run_due(datetime(2026, 3, 11, 23, 0, tzinfo=UTC))
    next_day = scheduler.run_due(datetime(2026, 3, 12, 0, 15, tzinfo=UTC))

    assert (at_start, just_before, on_time, same_day_later, next_day) == (
        [],
        [],
        ["a"],
        [],
        ["a"],
    )


@pytest.mark.django_db
def test_a_daily_job_missed_for_days_runs_once_then_back_on_its_time():
    calls.clear()
    scheduler = InProcessScheduler({"a": Job(job_a, DailyAt(2), "")}, started=START)

    woke = scheduler.run_due(datetime(2026, 3, 14, 9, 0, tzinfo=UTC))  # slept past 3 runs

    assert woke == ["a"]
    assert scheduler.next_run["a"] == datetime(2026, 3, 15, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 10, 0, 14, 59, tzinfo=UTC), datetime(2026, 3, 10, 0, 15, tzinfo=UTC)),
        # exactly on time: that run is the one just made, the next is tomorrow
        (datetime(2026, 3, 10, 0, 15, tzinfo=UTC), datetime(2026, 3, 11, 0, 15, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2027, 1, 1, 0, 15, tzinfo=UTC)),
        (datetime(2028, 2, 28, 12, 0, tzinfo=UTC), datetime(2028, 2, 29, 0, 15, tzinfo=UTC)),
        # 01:00 in UTC+2 is 23:00 UTC the day before
        (
            datetime(2026, 3, 10, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 3, 10, 0, 15, tzinfo=UTC),
        ),
    ],
)
def test_daily_next_run_is_the_next_time_of_day_in_utc(moment, expected):
    assert DailyAt(0, 15).next_after(moment) == expected


def test_a_time_of_day_must_exist():
    with pytest.raises(ValueError, match="not a time of day"):
        DailyAt(24, 0)


@pytest.mark.django_db
def test_the_asgi_app_starts_the_in_process_scheduler_on_schedule(monkeypatch):
    """Over one simulated day, ticking every 5 s as the thread does, each job of the
    schedule runs at exactly the times its schedule names."""
    from agent_registry.asgi import application

    started: list[InProcessScheduler] = []
    monkeypatch.setattr(InProcessScheduler, "start", lambda self: started.append(self))
    monkeypatch.setattr(scheduler_module, "datetime", _FrozenDatetime)
    monkeypatch.setattr(Job, "load", lambda job: lambda: None)  # don't run the real jobs
    with override_settings(IN_PROCESS_JOBS=True):
        assert _lifespan(application) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    (scheduler,) = started
    assert scheduler.schedule is schedule.schedule()

    runs: dict[str, list[datetime]] = {name: [] for name in scheduler.schedule}
    tick = timedelta(seconds=scheduler_module.TICK_SECONDS)
    now = START
    while now < START + timedelta(days=1):
        for name in scheduler.run_due(now):
            runs[name].append(now)
        now += tick

    def every(minutes: int) -> list[datetime]:
        step = timedelta(minutes=minutes)
        return [START + k * step for k in range(24 * 60 // minutes)]

    assert runs == {
        "aggregate-recent-usage": every(5),
        "aggregate-yesterday": [datetime(2026, 3, 11, 0, 15, tzinfo=UTC)],
        "roll-quota-periods": every(10),
        "close-billing-cycles": every(60),
        "reconcile-usage": [datetime(2026, 3, 11, 2, 0, tzinfo=UTC)],
        "create-usage-partitions": [datetime(2026, 3, 11, 0, 30, tzinfo=UTC)],
        "waldur-sync": every(15),
        "waldur-offerings": every(15),
        "waldur-process-orders": every(3),
        "waldur-register-hooks": every(6 * 60),
        "waldur-push-usage": every(60),
        "stripe-sync-plans": every(6 * 60),
        "stripe-report-usage": every(15),
        "stripe-resync": every(60),
    }


@pytest.mark.django_db
def test_without_in_process_jobs_the_asgi_app_starts_no_scheduler(monkeypatch):
    from agent_registry.asgi import application

    started: list[InProcessScheduler] = []
    monkeypatch.setattr(InProcessScheduler, "start", lambda self: started.append(self))
    with override_settings(IN_PROCESS_JOBS=False):
        _lifespan(application)

    assert started == []


def _lifespan(app) -> list[str]:
    """Start the ASGI app up and shut it down, as uvicorn does; the answers' types."""
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    answers: list[str] = []

    async def receive():
        return next(incoming)

    async def send(message):
        answers.append(message["type"])

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    return answers


class _FrozenDatetime(datetime):
    """The scheduler reads the wall clock at start; the simulated day starts at START."""

    @classmethod
    def now(cls, tz=None):
        return START


def test_each_app_registers_its_jobs_once_and_a_name_belongs_to_one_job():
    before = dict(schedule.schedule())

    schedule.register(jobs.SCHEDULE, task_name=jobs.task_name)  # a second ready(): no-op
    with pytest.raises(ImproperlyConfigured, match="aggregate-yesterday"):
        schedule.register(
            {"aggregate-yesterday": Job(job_a, DailyAt(3), "another app's job")},
            task_name=jobs.task_name,
        )

    assert dict(schedule.schedule()) == before
    assert set(jobs.SCHEDULE) <= set(before)


# --- Celery beat: rows written from SCHEDULE -----------------------------------------------


def beat_rows() -> dict[str, tuple[str, Every | DailyAt]]:
    """Every beat row, read back into SCHEDULE's terms."""
    rows: dict[str, tuple[str, Every | DailyAt]] = {}
    for row in PeriodicTask.objects.select_related("interval", "crontab"):
        assert row.solar is None
        assert row.clocked is None
        assert not row.one_off
        if row.interval is not None:
            seconds = timedelta(**{row.interval.period: row.interval.every}).total_seconds()
            when: Every | DailyAt = Every(int(seconds))
        else:
            cron = row.crontab
            assert (cron.day_of_month, cron.month_of_year, cron.day_of_week) == ("*", "*", "*")
            assert str(cron.timezone) == "UTC"
            when = DailyAt(int(cron.hour), int(cron.minute))
        rows[row.name] = (row.task, when)
    return rows


def scheduled() -> dict[str, tuple[str, Every | DailyAt]]:
    return {name: (schedule.task_name(name), job.when) for name, job in schedule.schedule().items()}


def all_rows() -> list[dict]:
    return list(PeriodicTask.objects.order_by("name").values())


@pytest.mark.django_db
def test_after_sync_the_beat_rows_equal_the_schedule():
    beat.beat_schedules_sync()

    assert beat_rows() == scheduled()
    assert set(PeriodicTask.objects.values_list("enabled", flat=True)) == {True}


@pytest.mark.django_db
def test_migrate_leaves_a_fresh_database_with_the_schedules():
    PeriodicTask.objects.all().delete()

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    assert beat_rows() == scheduled()


@pytest.mark.django_db
def test_sync_is_idempotent():
    beat.beat_schedules_sync()
    before = all_rows()

    report = beat.beat_schedules_sync()

    assert (report.created, report.updated, report.removed) == ([], [], [])
    assert report.unchanged == list(schedule.schedule())
    assert all_rows() == before  # not even date_changed moved


@pytest.mark.django_db
def test_sync_keeps_an_operators_pause_but_puts_the_schedule_back():
    beat.beat_schedules_sync()
    paused = PeriodicTask.objects.get(name="roll-quota-periods")
    paused.enabled = False
    paused.save()
    edited = PeriodicTask.objects.get(name="aggregate-recent-usage")
    edited.enabled = False
    edited.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    edited.save()

    report = beat.beat_schedules_sync()

    assert report.updated == ["aggregate-recent-usage"]
    assert "roll-quota-periods" in report.unchanged
    assert beat_rows() == scheduled()
    assert set(PeriodicTask.objects.filter(enabled=False).values_list("name", flat=True)) == {
        "roll-quota-periods",
        "aggregate-recent-usage",
    }


@pytest.mark.django_db
def test_sync_removes_rows_of_jobs_gone_from_the_schedule_but_not_an_operators_own():
    beat.beat_schedules_sync()
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(
        name="old-job",
        task=jobs.task_name("old-job"),
        interval=every_hour,
        description=f"{beat.MANAGED_MARKER} A job since removed.",
    )
    PeriodicTask.objects.create(
        name="operator-extra-aggregation",
        task=jobs.task_name("aggregate-recent-usage"),
        interval=every_hour,
        description="added by hand in the admin",
    )

    report = beat.beat_schedules_sync()

    assert report.removed == ["old-job"]
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == {
        *schedule.schedule(),
        "operator-extra-aggregation",
    }


@pytest.mark.django_db
def test_the_command_reports_created_updated_and_unchanged():
    PeriodicTask.objects.filter(name="reconcile-usage").delete()
    PeriodicTask.objects.filter(name="aggregate-yesterday").update(task="something.else")
    out = StringIO()

    call_command("sync_schedules", stdout=out)

    lines = out.getvalue().splitlines()
    assert "created   reconcile-usage" in lines
    assert "updated   aggregate-yesterday" in lines
    assert "unchanged roll-quota-periods" in lines
    assert lines[-1] == "schedules: 1 created, 1 updated, 12 unchanged, 0 removed"
    assert beat_rows() == scheduled()


@pytest.mark.django_db
@given(
    moment=st.datetimes(
        # hypothesis takes naive bounds and applies ``timezones``
        min_value=datetime(2024, 1, 1),  # noqa: DTZ001
        max_value=datetime(2030, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ).map(lambda moment: moment.replace(microsecond=0))
)
def test_beat_and_the_in_process_scheduler_agree_on_the_next_daily_run(moment):
    """Beat's own crontab (from the synced row) and DailyAt name the same next run."""
    for name, job in schedule.schedule().items():
        if not isinstance(job.when, DailyAt):
            continue
        crontab = PeriodicTask.objects.get(name=name).crontab.schedule
        crontab.nowfun = lambda moment=moment: moment
        _due, seconds_left = crontab.is_due(last_run_at=moment)  # it has just run

        assert moment + timedelta(seconds=seconds_left) == job.when.next_after(moment)


# --- the Celery tasks --------------------------------------------------------------------


def fake_job(monkeypatch, dotted_path: str, result: object) -> list[int]:
    """Replace the job function at ``dotted_path`` (its module need not exist yet)."""
    module_path, attribute = dotted_path.rsplit(".", 1)
    ran: list[int] = []

    def fake() -> object:
        ran.append(1)
        return result

    try:
        module = import_string(module_path) if "." in module_path else None
        if not isinstance(module, types.ModuleType):
            raise ImportError(module_path)
    except ImportError:
        module = types.ModuleType(module_path)
        monkeypatch.setitem(sys.modules, module_path, module)
    monkeypatch.setattr(module, attribute, fake, raising=False)
    return ran


def test_every_scheduled_job_has_its_celery_task():
    celery_app.loader.import_default_modules()  # every app's tasks.py, as a worker does
    # billing's share usage's
    prefixes = (jobs.TASK_PREFIX, waldur_jobs.TASK_PREFIX, stripe_jobs.TASK_PREFIX)
    registered = {name for name in celery_app.tasks if name.startswith(prefixes)}

    assert registered == {schedule.task_name(name) for name in schedule.schedule()}


@pytest.mark.parametrize("name", list(jobs.SCHEDULE))
def test_each_task_runs_its_job(monkeypatch, name):
    ran = fake_job(monkeypatch, jobs.SCHEDULE[name].func, result=f"{name} done")
    task = celery_app.tasks[jobs.task_name(name)]

    assert task() == f"{name} done"
    assert ran == [1]


@pytest.mark.parametrize(("legacy", "name"), list(tasks.LEGACY_TASK_NAMES.items()))
def test_a_message_queued_under_a_former_task_name_still_runs_its_job(monkeypatch, legacy, name):
    ran = fake_job(monkeypatch, jobs.SCHEDULE[name].func, result=f"{name} done")

    assert celery_app.tasks[legacy]() == f"{name} done"
    assert ran == [1]


@pytest.mark.django_db
def test_the_celery_tasks_call_the_jobs():
    assert tasks.roll_quota_periods.apply().get() == 0


# --- the jobs themselves -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_aggregation_job_summarises_today_and_the_trailing_days():
    access = factories.make_subscription().access
    record(access, datetime.now(UTC))

    rows = jobs.aggregate_recent_usage()

    assert rows >= 1
    assert DailyUsageSummary.objects.filter(
        agent_instance=access.agent_instance, date=datetime.now(UTC).date()
    ).exists()


@pytest.mark.django_db
def test_the_yesterday_job_aggregates_yesterday_only():
    access = factories.make_subscription().access
    record(access, datetime(2026, 3, 9, 23, 59, tzinfo=UTC))
    record(access, datetime(2026, 3, 10, 0, 1, tzinfo=UTC))

    rows = jobs.aggregate_yesterday(today=date(2026, 3, 10))

    assert rows == 1
    assert list(DailyUsageSummary.objects.values_list("date", "total_requests")) == [
        (date(2026, 3, 9), 1)
    ]
