"""``manage.py waldur_process_orders``: one pass over the offerings' orders now."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from agent_registry.waldur.client import client_from_settings, enabled
from agent_registry.waldur.orders import orders_process


class Command(BaseCommand):
    help = (
        "Take the Waldur orders of the agents' offerings through approval, subscription, "
        "key hand-over and completion; mirror paused resources."
    )

    def handle(self, *args, **options) -> None:
        if not enabled():
            raise CommandError("WALDUR_API_URL is not set: the Waldur integration is off.")
        try:
            with client_from_settings() as client:
                result = orders_process(client=client, progress=self.stdout.write)
        except ImproperlyConfigured as exc:
            raise CommandError(f"waldur_process_orders: {exc}") from exc
        counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())) or "no orders"
        summary = f"waldur_process_orders: {counts}"
        if not result.ok:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(f"{summary}; {len(result.errors)} error(s)")
        self.stdout.write(self.style.SUCCESS(summary))
