"""``python -m tests.fakes.stripe --port N`` serves the fake Stripe for the demo: the API
(with the printed secret key), a hosted Checkout page to pay on, and signed webhooks
POSTed to the registry's endpoint (docs/billing.md "Running the demo against a fake")."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import stripe

from tests.fakes.http_server import Exchange, FakeHTTPServer
from tests.fakes.stripe import SECRET_KEY, WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[3]


class WebhookReceiver(FakeHTTPServer):
    def handle(self, exchange: Exchange) -> None:
        exchange.send_json(200, {"status": "processed"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_fake_runs_standalone_and_a_checkout_can_be_paid_on_its_page():
    port = free_port()
    with WebhookReceiver() as registry:
        fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.stripe",
                "--port",
                str(port),
                "--webhook-url",
                f"{registry.base_url}/api/v1/billing/webhooks/",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert fake.stdout is not None
            first = fake.stdout.readline()
            assert first.strip() == f"Fake Stripe listening on http://127.0.0.1:{port}"
            printed = [fake.stdout.readline().strip() for _ in range(6)]
            assert f"export STRIPE_API_BASE=http://127.0.0.1:{port}" in printed
            assert f"export STRIPE_API_KEY_SECRET={SECRET_KEY}" in printed
            assert f"export STRIPE_WEBHOOK_SECRET={WEBHOOK_SECRET}" in printed

            api = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {SECRET_KEY}"},
                follow_redirects=False,
            )
            customer = api.post("/v1/customers", data={"name": "Acme"}).json()["id"]
            product = api.post("/v1/products", data={"name": "Echo - Pro"}).json()["id"]
            price = api.post(
                "/v1/prices",
                data={
                    "product": product,
                    "currency": "usd",
                    "unit_amount_decimal": "1900",
                    "recurring[interval]": "month",
                },
            ).json()["id"]
            session = api.post(
                "/v1/checkout/sessions",
                data={
                    "mode": "subscription",
                    "customer": customer,
                    "line_items[0][price]": price,
                    "line_items[0][quantity]": "1",
                    "success_url": "http://127.0.0.1:8000/portal/?session_id={CHECKOUT_SESSION_ID}",
                },
            ).json()
            assert session["url"] == f"http://127.0.0.1:{port}/checkout/{session['id']}"

            page = httpx.get(session["url"])
            assert page.status_code == 200
            assert "Pay" in page.text
            paid = httpx.post(session["url"], follow_redirects=False)
            assert paid.status_code == 303
            assert paid.headers["location"] == (
                f"http://127.0.0.1:8000/portal/?session_id={session['id']}"
            )

            deadline = time.monotonic() + 5
            while len(registry.requests) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            types = []
            for request in registry.requests:
                body = request.body.decode()
                # signed as Stripe signs: the registry's verification accepts it
                stripe.WebhookSignature.verify_header(
                    body, request.headers["stripe-signature"], WEBHOOK_SECRET, tolerance=300
                )
                types.append(json.loads(body)["type"])
            assert sorted(types) == sorted(
                [
                    "customer.subscription.created",
                    "invoice.paid",
                    "invoice.payment_succeeded",
                    "checkout.session.completed",
                ]
            )
            assert api.get(f"/v1/checkout/sessions/{session['id']}").json()["status"] == "complete"
        finally:
            fake.terminate()
            fake.wait(timeout=5)
