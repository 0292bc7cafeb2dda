"""``manage.py waldur_sync_offerings``: bring published agents' offerings in step now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent_registry.waldur.client import enabled
from agent_registry.waldur.publishing import offerings_repair


class Command(BaseCommand):
    help = (
        "Create or update the Waldur offering of every published agent (texts, components, "
        "plans, prices, state) and archive those of retired agents."
    )

    def handle(self, *args, **options) -> None:
        if not enabled():
            raise CommandError("WALDUR_API_URL is not set: the Waldur integration is off.")
        result = offerings_repair(progress=self.stdout.write)
        counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())) or "nothing"
        summary = f"waldur_sync_offerings: {counts}"
        if not result.ok:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(f"{summary}; {len(result.errors)} error(s)")
        self.stdout.write(self.style.SUCCESS(summary))
