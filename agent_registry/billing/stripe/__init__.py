"""Stripe: the card-payment billing channel (issue 12, docs/billing.md "Stripe").

Only ``client.py`` talks to Stripe; ``services.py`` holds the rules, ``webhooks.py``
applies Stripe's events, ``usage.py`` reports metered usage.
"""
