"""``usage_partitions [--ahead N | --list | --detach YYYY-MM]``: the usage record partitions."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from agent_registry.usage import partitions


class Command(BaseCommand):
    help = (
        "Monthly partitions of the usage records (PostgreSQL). Default: create the current "
        f"month and the {partitions.MONTHS_AHEAD} after it (idempotent; moves their rows out "
        "of DEFAULT). See docs/usage-storage.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--ahead",
            type=int,
            metavar="N",
            help="create the current month and N months after it "
            f"(default {partitions.MONTHS_AHEAD})",
        )
        action.add_argument("--list", dest="show", action="store_true", help="list the partitions")
        action.add_argument(
            "--detach",
            metavar="YYYY-MM",
            help="detach a past month's partition; its table is kept for archiving",
        )
        action.add_argument(
            "--attach",
            metavar="YYYY-MM",
            help="attach the table usage_usagerecord_pYYYY_MM (a restored or bulk-loaded "
            "month) as that month's partition",
        )

    def handle(
        self,
        *args,
        ahead: int | None,
        show: bool,
        detach: str | None,
        attach: str | None,
        **options,
    ) -> None:
        if not partitions.is_partitioned():
            if detach or attach:
                raise CommandError(
                    f"usage records are not partitioned on this database ({connection.vendor})"
                )
            self.stdout.write(
                f"usage records are not partitioned on this database ({connection.vendor}); "
                "nothing to do"
            )
            return
        if detach is not None:
            self._detach(detach)
        elif attach is not None:
            self._attach(attach)
        elif show:
            self._list()
        else:
            self._create(partitions.MONTHS_AHEAD if ahead is None else ahead)

    def _create(self, ahead: int) -> None:
        if ahead < 0:
            raise CommandError(f"--ahead must be 0 or more, not {ahead}")
        try:
            created = partitions.ensure_partitions(months_ahead=ahead)
        except partitions.PartitionError as exc:
            raise CommandError(str(exc)) from exc
        for name in created:
            self.stdout.write(f"created {name}")
        self.stdout.write(
            f"created {len(created)} partitions; {self._state()}"
            + ("" if created else " (the current month and the next ones already existed)")
        )

    def _list(self) -> None:
        for partition in partitions.list_partitions():
            rows = "never analysed" if partition.estimated_rows < 0 else partition.estimated_rows
            self.stdout.write(f"{partition.name:<32} {partition.bounds}  ~rows: {rows}")
        self.stdout.write(self._state())

    def _detach(self, period: str) -> None:
        try:
            name = partitions.detach_partition(period)
        except ValueError as exc:
            raise CommandError(f"--detach: {exc}") from exc
        except partitions.PartitionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"detached {name}: kept as a table of its own, no longer read through "
            f"{partitions.TABLE}; {self._state()}"
        )

    def _attach(self, period: str) -> None:
        try:
            name = partitions.attach_partition(period)
        except ValueError as exc:
            raise CommandError(f"--attach: {exc}") from exc
        except partitions.PartitionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"attached {name}; {self._state()}")

    def _state(self) -> str:
        months = [p for p in partitions.list_partitions() if p.period is not None]
        span = f" ({months[0].period} to {months[-1].period})" if months else ""
        return (
            f"{len(months)} month partitions{span}, DEFAULT holds {partitions.default_rows()} rows"
        )
