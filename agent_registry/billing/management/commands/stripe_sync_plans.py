"""``manage.py stripe_sync_plans``: plans as Stripe products and prices, and the meters."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent_registry.agents.models import AgentPlan
from agent_registry.billing.stripe import client
from agent_registry.billing.stripe.errors import StripeFailure
from agent_registry.billing.stripe.services import sync_plans


class Command(BaseCommand):
    help = "Create or update every active paid plan's Stripe product and prices, and the meters."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--plan", action="append", default=[], help="Only this plan (uuid).")

    def handle(self, *args, **options) -> None:
        if not client.enabled():
            raise CommandError("STRIPE_API_KEY_SECRET is not set: the Stripe integration is off.")
        plans = AgentPlan.objects.filter(pk__in=options["plan"]) if options["plan"] else None
        try:
            run = sync_plans(plans, progress=self.stdout.write)
        except StripeFailure as exc:
            raise CommandError(f"stripe_sync_plans failed: {exc}") from exc
        for error in run.errors:
            self.stderr.write(error)
        if not run.ok:
            raise CommandError(f"stripe_sync_plans: {run.summary()}")
        self.stdout.write(self.style.SUCCESS(f"stripe_sync_plans: {run.summary()}"))
