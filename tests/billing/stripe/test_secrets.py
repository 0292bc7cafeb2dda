"""The Stripe keys, the signing secret and the API key are never in a log, the audit log
or a response (but the API key, once, at checkout)."""

from __future__ import annotations

import json
import logging

import pytest
from django.apps import apps

from tests.fakes.stripe import SECRET_KEY, WEBHOOK_SECRET

pytestmark = pytest.mark.django_db


def test_a_whole_story_leaks_no_secret(shop, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    body = shop.checkout()
    api_key = body["api_key"]
    sub_id = shop.stripe.pay(body["session_id"])["id"]
    shop.stripe.fail_payment(sub_id)
    shop.stripe.fault = "500"
    shop.developer.post(
        "/api/v1/billing/checkout/",
        {"plan": str(shop.fee_plan.pk), "project": str(shop.project.pk)},
        format="json",
    )
    shop.stripe.fault = None
    answers = [
        shop.developer.get("/api/v1/billing/subscriptions/").content.decode(),
        shop.developer.get(
            f"/api/v1/billing/subscriptions/{body['subscription']['id']}/"
        ).content.decode(),
        shop.developer.get("/api/v1/billing/customer/").content.decode(),
    ]
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    stored = json.dumps(
        [
            list(model._base_manager.values())
            for label in ("auditlog", "billing")
            for model in apps.get_app_config(label).get_models()
        ],
        default=str,
    )
    for secret in (SECRET_KEY, WEBHOOK_SECRET, api_key):
        assert secret not in logged
        assert secret not in stored
        assert all(secret not in answer for answer in answers)
