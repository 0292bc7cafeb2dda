"""``close_billing_cycle --period YYYY-MM``: refresh an open month, finalize one past grace."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from agent_registry.billing.cycles import CycleFinalized, close_cycle, closes_at
from agent_registry.core import periods
from agent_registry.core.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Recompute every tenant's TenantQuotaSnapshot of a UTC month from the daily "
        "summaries. A month whose grace period is over is finalized (then immutable); an "
        "open one is only refreshed. Run aggregate_usage for the month first if records "
        "arrived since the last aggregation. Default: the current month."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", metavar="YYYY-MM", help="UTC month (default: current)")

    def handle(self, *args, period: str | None, **options) -> None:
        now = timezone.now()
        try:
            period = periods.period_of(now) if period is None else periods.parse_period(period)
        except ValueError as exc:
            raise CommandError(f"--period: {exc}") from None
        due = closes_at(period)
        self.stdout.write(
            f"billing cycle {period}: "
            + (
                "past its grace period, finalizing"
                if now >= due
                else f"open until {due.isoformat()}, refreshing"
            )
        )
        began = time.monotonic()
        bar = ProgressBar(self.stdout, "subscriptions priced")
        try:
            result = close_cycle(
                period, now=now, progress=lambda done, total, _: bar.step(done, total)
            )
        except CycleFinalized as exc:
            raise CommandError(f"{exc}; finalized cycles never change") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        totals = ", ".join(f"{amount} {cur}" for cur, amount in result.total_cost_cents.items())
        self.stdout.write(
            f"{'finalized' if result.finalized else 'refreshed'} {period}: "
            f"{result.snapshots} tenant snapshots, {result.adjustments} adjustment lines, "
            f"total {totals or '0'} (minor units) in {time.monotonic() - began:.1f}s"
        )
