"""``aggregate_usage --from YYYY-MM-DD --to YYYY-MM-DD``: (re)compute daily summaries."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent_registry.core.progress import ProgressBar
from agent_registry.usage.aggregation import DayResult, aggregate_range


def parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (expected YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Recompute DailyUsageSummary rows for each UTC day from --from to --to inclusive "
        "(default: yesterday and today). Idempotent; one transaction per day."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first UTC day")
        parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last UTC day")

    def handle(self, *args, start: str | None, end: str | None, **options) -> None:
        today = datetime.now(UTC).date()
        first = parse_day(start, "--from") if start else today - timedelta(days=1)
        last = parse_day(end, "--to") if end else today
        if last < first:
            raise CommandError(f"--to {last.isoformat()} is before --from {first.isoformat()}")

        bar = ProgressBar(self.stdout, "days")
        began = time.monotonic()

        def progress(done: int, total: int, day: date, result: DayResult) -> None:
            bar.step(
                done,
                total,
                f"{day.isoformat()}: {result.rows} rows, {result.records} records, "
                f"{result.deleted} stale removed",
            )

        try:
            result = aggregate_range(first, last, progress=progress)
        except Exception as exc:
            raise CommandError(f"aggregation failed: {exc}") from exc
        finally:
            bar.close()
        elapsed = time.monotonic() - began
        self.stdout.write(
            f"aggregated {result.days} days, {result.rows} summary rows, "
            f"{result.records} records in {elapsed:.1f}s"
        )
