"""``manage.py reset_quotas``: start a new quota period for every subscription whose
period has ended (see usage/quotas.py). Safe to run at any time and more than once."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from agent_registry.core.progress import ProgressBar
from agent_registry.usage.quotas import quota_roll_periods


class Command(BaseCommand):
    help = "Roll subscriptions whose monthly quota period has ended into the current one."

    def handle(self, *args, **options):
        started = time.monotonic()
        bar = ProgressBar(self.stdout, "subscriptions")
        try:
            rolled = quota_roll_periods(progress=bar.step)
        finally:
            bar.close()
        self.stdout.write(
            f"rolled {rolled} subscription(s) into the current quota period "
            f"in {time.monotonic() - started:.1f}s"
        )
