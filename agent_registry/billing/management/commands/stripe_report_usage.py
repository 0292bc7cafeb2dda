"""``manage.py stripe_report_usage``: metered usage to Stripe (growth since the last run)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent_registry.billing.stripe import client
from agent_registry.billing.stripe.usage import UsageRun, report_usage, reports_record, reports_send
from agent_registry.core import periods


class Command(BaseCommand):
    help = (
        "Record each card subscription's usage growth as meter reports and send the backlog "
        "to Stripe (identifiers are deterministic: a re-run never counts twice)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--period", help="Only this month (YYYY-MM); default: this and last.")

    def handle(self, *args, **options) -> None:
        if not client.enabled():
            raise CommandError("STRIPE_API_KEY_SECRET is not set: the Stripe integration is off.")
        if options["period"]:
            try:
                period = periods.parse_period(options["period"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            run = reports_record(period, run=UsageRun())
            self.stdout.write(f"{period}: recorded {run.recorded}")
            reports_send(run=run)
        else:
            run = report_usage()
        for line in run.drift:
            self.stderr.write(f"drift: {line}")
        for error in run.errors:
            self.stderr.write(error)
        if not run.ok:
            raise CommandError(f"stripe_report_usage: {run.summary()}")
        self.stdout.write(self.style.SUCCESS(f"stripe_report_usage: {run.summary()}"))
