"""``reconcile_usage --period YYYY-MM``: compare counters, records, summaries, snapshots.

Read-only. Exit codes: 0 everything matches (notes allowed), 1 usage error or failure
(Django's CommandError default), 2 drift. docs/reconciliation.md explains each check.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent_registry.billing.reconciliation import (
    Difference,
    ReconciliationReport,
    TenantResult,
    reconcile_period,
)
from agent_registry.core.progress import ProgressBar

EXIT_DRIFT = 2


class Command(BaseCommand):
    help = (
        "Reconcile one UTC month of usage per tenant: gateway counters, quota_used, usage "
        "records, daily summaries and billing snapshots. Read-only. Exits 0 when everything "
        "matches, 2 on drift, 1 on a usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, metavar="YYYY-MM", help="UTC month")
        parser.add_argument("--tenant", metavar="SLUG", help="only this tenant")
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="print the report as JSON on stdout",
        )

    def handle(self, *args, period: str, tenant: str | None, as_json: bool, **options) -> None:
        # Progress and the summary line go to stderr with --json, so stdout is pure JSON.
        out = self.stderr if as_json else self.stdout
        bar = ProgressBar(out, "tenants")
        began = time.monotonic()

        def progress(done: int, total: int, slug: str, result: TenantResult) -> None:
            bar.step(
                done,
                total,
                f"{slug}: {len(result.differences)} differences, {len(result.notes)} notes",
            )

        try:
            report = reconcile_period(period, tenant_slug=tenant, progress=progress)
        except (ValueError, LookupError) as exc:
            raise CommandError(f"{exc}") from exc
        finally:
            bar.close()
        elapsed = time.monotonic() - began

        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._write_findings(report)
        out.write(f"{report.summary()} in {elapsed:.1f}s")
        if not report.ok:
            raise CommandError(
                f"drift: {len(report.differences)} differences in {report.period}",
                returncode=EXIT_DRIFT,
            )

    def _write_findings(self, report: ReconciliationReport) -> None:
        for difference in report.differences:
            self.stdout.write(_format(difference))
        for note in report.notes:
            where = f" {note.subscription}" if note.subscription else ""
            self.stdout.write(f"note   {note.tenant}{where} [{note.check}] {note.message}")
        advice = dict.fromkeys(d.advice for d in report.differences)
        if advice:
            self.stdout.write("to fix:")
            for line in advice:
                self.stdout.write(f"  - {line}")


def _pairs(values: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in values.items())


def _format(difference: Difference) -> str:
    where = f" {difference.subscription}" if difference.subscription else ""
    return (
        f"DRIFT  {difference.tenant}{where} [{difference.check}] {difference.compared}\n"
        f"       expected {_pairs(difference.expected)}\n"
        f"       actual   {_pairs(difference.actual)}\n"
        f"       advice   {difference.advice}"
    )
