"""``manage.py waldur_register_hooks``: point Waldur's hooks at the receiver."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from agent_registry.waldur.client import client_from_settings, enabled
from agent_registry.waldur.errors import WaldurError
from agent_registry.waldur.hooks import hooks_register


class Command(BaseCommand):
    help = "Create or update the hooks in Waldur that point at this registry's receiver."

    def handle(self, *args, **options) -> None:
        if not enabled():
            raise CommandError("WALDUR_API_URL is not set: the Waldur integration is off.")
        try:
            with client_from_settings() as client:
                lines = hooks_register(client=client)
        except (WaldurError, ImproperlyConfigured) as exc:
            raise CommandError(f"waldur_register_hooks failed: {exc}") from exc
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"waldur_register_hooks: {len(lines)} hook(s) ok"))
