"""``manage.py stripe_resync``: repair local subscriptions from Stripe, retry failed events."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent_registry.billing.stripe import client
from agent_registry.billing.stripe.resync import resync


class Command(BaseCommand):
    help = "Read every live card subscription and open checkout from Stripe and apply it; "
    help += "apply again the webhook events that failed."

    def handle(self, *args, **options) -> None:
        if not client.enabled():
            raise CommandError("STRIPE_API_KEY_SECRET is not set: the Stripe integration is off.")
        run = resync(progress=self.stdout.write)
        for error in run.errors:
            self.stderr.write(error)
        if not run.ok:
            raise CommandError(f"stripe_resync: {run.summary()}")
        self.stdout.write(self.style.SUCCESS(f"stripe_resync: {run.summary()}"))
