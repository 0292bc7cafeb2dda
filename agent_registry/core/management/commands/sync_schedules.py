"""``manage.py sync_schedules``: write Celery beat's schedule rows from the jobs' schedule.

Idempotent; ``migrate`` runs the same sync afterwards. An operator's pause
(``enabled=False`` in the admin) is kept. See core/beat.py ``beat_schedules_sync``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS

from agent_registry.core.beat import beat_schedules_sync


class Command(BaseCommand):
    help = (
        "Create or update django-celery-beat's periodic tasks from the jobs' schedule "
        "(keeps an operator's enabled=False)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, database: str, **options) -> None:
        report = beat_schedules_sync(using=database)
        for label, names in (
            ("created", report.created),
            ("updated", report.updated),
            ("unchanged", report.unchanged),
            ("removed", report.removed),
        ):
            for name in names:
                self.stdout.write(f"{label:<9} {name}")
        self.stdout.write(f"schedules: {report}")
