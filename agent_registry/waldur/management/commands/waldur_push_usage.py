"""``manage.py waldur_push_usage [--period YYYY-MM]``: report usage to Waldur now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent_registry.core import periods
from agent_registry.waldur.usage_push import push_periods


class Command(BaseCommand):
    help = (
        "Report the month-to-date usage of every Waldur-billed subscription to its Waldur "
        "resource (set_usage), from the billing snapshots: the current and the previous "
        "month, or --period. Unchanged amounts are not sent; failed ones are retried at "
        "once (the scheduled push waits for their backoff). Exits 1 if anything failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", metavar="YYYY-MM", help="only this UTC month")

    def handle(self, *args, period: str | None, **options) -> None:
        chosen = None
        if period is not None:
            try:
                chosen = [periods.parse_period(period)]
            except ValueError as exc:
                raise CommandError(f"--period: {exc}") from exc
        result = push_periods(chosen, force=True, progress=self.stdout.write)
        if result is None:
            self.stdout.write("WALDUR_API_URL is not set: integration off, nothing sent.")
            return
        summary = f"waldur_push_usage: {result.summary()}"
        if not result.ok:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
