"""Re-encrypt every runtime secret under the first key of RUNTIME_SECRETS_KEYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent_registry.secrets import crypto
from agent_registry.secrets.errors import SecretUnreadable
from agent_registry.secrets.services import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored runtime secret under the first key of RUNTIME_SECRETS_KEYS "
        "(MultiFernet.rotate). Run after putting a new key first; drop the old key after."
    )

    def handle(self, *args, **options) -> None:
        problems = crypto.key_problems()
        if problems:
            raise CommandError("RUNTIME_SECRETS_KEYS: " + "; ".join(problems))
        try:
            count = secrets_reencrypt()
        except SecretUnreadable as exc:
            raise CommandError(
                f"{exc}: keep every old key in RUNTIME_SECRETS_KEYS until rotation succeeds."
            ) from exc
        self.stdout.write(f"Re-encrypted {count} runtime secrets under the first key.")
