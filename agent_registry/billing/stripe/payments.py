"""Stripe as the payment provider of ``POST /api/v1/subscriptions/`` (access/payments.py).

A non-operator subscribing to a paid plan gets the same card checkout as
``POST /api/v1/billing/checkout/``: one service, ``services.checkout_start``.
Registered from billing's ``AppConfig.ready``; enabled while Stripe is configured.
"""

from __future__ import annotations

from agent_registry.access import payments
from agent_registry.billing.stripe import client, services
from agent_registry.billing.stripe.errors import StripePermanent, StripeTransient, as_answer


class StripePayments:
    name = "stripe"

    def enabled(self) -> bool:
        return client.enabled()

    def checkout_start(
        self, *, agent, plan, project, name: str, actor, email: str
    ) -> payments.CheckoutStarted:
        try:
            started = services.checkout_start(
                agent=agent, plan=plan, project=project, name=name, actor=actor, email=email
            )
        except (StripeTransient, StripePermanent) as exc:
            raise as_answer(exc) from exc
        return payments.CheckoutStarted(
            access=started.subscription.access,
            api_key=started.api_key,
            checkout_url=started.checkout_url,
            session_id=started.subscription.checkout_session_id,
        )
