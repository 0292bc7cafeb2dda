"""``manage.py waldur_sync``: mirror Waldur's customers, projects and roles now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent_registry.waldur.client import client_from_settings, enabled
from agent_registry.waldur.events import events_retry
from agent_registry.waldur.sync import sync_all


class Command(BaseCommand):
    help = "Mirror Waldur's customers, projects and roles into tenants, projects and members."

    def handle(self, *args, **options) -> None:
        if not enabled():
            raise CommandError("WALDUR_API_URL is not set: the Waldur integration is off.")
        with client_from_settings() as client:
            result = sync_all(client=client, progress=self.stdout.write)
        retried = events_retry()
        counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())) or "nothing"
        summary = f"waldur_sync: {counts}; {retried} event(s) retried"
        if not result.ok:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(f"{summary}; {len(result.errors)} error(s)")
        self.stdout.write(self.style.SUCCESS(summary))
