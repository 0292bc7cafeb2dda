"""The load test's users (Locust, FastHttpUser): a realistic mix against a running registry.

Runs in the bench venv (.venv-bench: Locust only), so it imports nothing of the
project. ``LOAD_DATA`` names the JSON ``setup_data.py`` wrote. Each user is one slot:
a customer tenant (its API token and the shared app's three keys) and a project of its
own where it subscribes and unsubscribes.

The mix, per user, with a think time of ``LOAD_WAIT_MIN``..``LOAD_WAIT_MAX`` seconds
between tasks (weights in the ``@task`` decorators):

- invoke, native API, plain and streamed (``POST /api/v1/agents/{id}/invoke``);
- invoke, OpenAI-compatible, plain and streamed (``POST /v1/chat/completions``);
- invoke on the Trial plan (2 calls/s per subscription, shared by the customer's users):
  its 429 ``rate_limited`` answers are *intended* and reported apart;
- browse the catalog (all, by category, by text);
- read usage (records of a subscription, daily summaries);
- subscribe to a free plan in its own project, call the agent once with the new key,
  unsubscribe (revoke).

A request fails when its status is unexpected or its body lacks what a client needs
(output, the stream's last event). Request names group by endpoint, not by id.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections import Counter
from pathlib import Path

from locust import FastHttpUser, between, events, task

DATA: dict = {}
# Each Locust process numbers its own users; with --processes N, user k of worker w
# takes slot w + N*k, so no two users (in any process) share a project.
_COUNTER = itertools.count()
INTENDED_429 = "429 rate_limited on the Trial plan (intended)"
PROMPTS = [
    "Where is my order 4711?",
    "Summarise the attached ticket in two sentences, please, and keep it short.",
    "Translate 'good morning' into French, Spanish and German.",
    "Write a haiku about load tests.",
]


# Request names of calls that reach an agent → the usage record each answered one must
# have: "<endpoint>[ (stream)] 200", as bench/load/__main__.py counts the records.
KINDS = {
    "POST /api/v1/agents/{id}/invoke": "invoke 200",
    "POST /api/v1/agents/{id}/invoke (new key)": "invoke 200",
    "POST /api/v1/agents/{id}/invoke [Trial]": "invoke 200",
    "POST /api/v1/agents/{id}/invoke (stream)": "invoke (stream) 200",
    "POST /v1/chat/completions": "chat.completions 200",
    "POST /v1/chat/completions [Trial]": "chat.completions 200",
    "POST /v1/chat/completions (stream)": "chat.completions (stream) 200",
}
# Answered calls (a 200 with a complete body) counted in this process, written to
# LOAD_COUNTS/answered-<pid>.json when it stops: exact even for calls that end while
# Locust is stopping, which its aggregated statistics may miss.
ANSWERED: Counter[str] = Counter()


@events.init.add_listener
def _load_data(environment, **kwargs) -> None:
    with open(os.environ["LOAD_DATA"], encoding="utf-8") as data:
        DATA.update(json.load(data))


@events.request.add_listener
def _count_answered(name, exception, response=None, **kwargs) -> None:
    if exception is None and name in KINDS:
        ANSWERED[KINDS[name]] += 1


def _write_answered(**kwargs) -> None:
    if ANSWERED:
        path = Path(os.environ["LOAD_COUNTS"]) / f"answered-{os.getpid()}.json"
        path.write_text(json.dumps(dict(ANSWERED)))


events.test_stop.add_listener(_write_answered)
events.quitting.add_listener(_write_answered)


def _why(response) -> str:
    """A failure's message: the status and body, or the connection error (status 0: no
    response at all, e.g. a reset or a timeout), which must count as a failure too."""
    if response.status_code == 0:
        return f"no response: {getattr(response, 'error', None)!r}"[:200]
    return f"HTTP {response.status_code}: {(response.text or '')[:200]}"


def _slot(environment) -> int:
    runner = environment.runner
    index = getattr(runner, "worker_index", 0) or 0
    workers = int(os.environ.get("LOAD_PROCESSES", "1"))
    return index + workers * next(_COUNTER)


class Customer(FastHttpUser):
    wait_time = between(
        float(os.environ.get("LOAD_WAIT_MIN", "2")), float(os.environ.get("LOAD_WAIT_MAX", "6"))
    )
    # Streams and the API under 1,000 users can be slow: a timeout is a failure, but late.
    network_timeout = 60.0
    connection_timeout = 60.0

    def on_start(self) -> None:
        slot = _slot(self.environment)
        customers = DATA["customers"]
        self.customer = customers[slot % len(customers)]
        self.project = self.customer["projects"][slot // len(customers)]
        self.auth = {"Authorization": f"Token {self.customer['token']}"}
        self.subs = self.customer["subscriptions"]

    # --- invoke ---------------------------------------------------------------------

    def _native(self, kind: str, *, stream: bool, name: str) -> None:
        sub = self.subs[kind]
        body = {"input": random.choice(PROMPTS), "stream": stream}
        with self.client.post(
            f"/api/v1/agents/{sub['agent_id']}/invoke",
            json=body,
            headers={"X-API-Key": sub["api_key"]},
            name=name,
            catch_response=True,
        ) as response:
            if kind == "trial" and response.status_code == 429:
                response.failure(INTENDED_429)
            elif response.status_code != 200:
                response.failure(_why(response))
            elif stream and "event: end" not in response.text:
                response.failure("stream without its end event")
            elif not stream and "output" not in response.json():
                response.failure("no output")

    def _chat(self, kind: str, *, stream: bool, name: str) -> None:
        sub = self.subs[kind]
        body = {
            "model": sub["agent_id"],
            "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        with self.client.post(
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {sub['api_key']}"},
            name=name,
            catch_response=True,
        ) as response:
            if kind == "trial" and response.status_code == 429:
                response.failure(INTENDED_429)
            elif response.status_code != 200:
                response.failure(_why(response))
            elif stream and not response.text.rstrip().endswith("data: [DONE]"):
                response.failure("stream without data: [DONE]")
            elif not stream and not response.json()["choices"][0]["message"]["content"]:
                response.failure("no content")

    @task(20)
    def invoke_native(self) -> None:
        kind = random.choice(("free", "metered"))
        self._native(kind, stream=False, name="POST /api/v1/agents/{id}/invoke")

    @task(8)
    def invoke_native_stream(self) -> None:
        kind = random.choice(("free", "metered"))
        self._native(kind, stream=True, name="POST /api/v1/agents/{id}/invoke (stream)")

    @task(14)
    def invoke_chat(self) -> None:
        kind = random.choice(("free", "metered"))
        self._chat(kind, stream=False, name="POST /v1/chat/completions")

    @task(6)
    def invoke_chat_stream(self) -> None:
        kind = random.choice(("free", "metered"))
        self._chat(kind, stream=True, name="POST /v1/chat/completions (stream)")

    @task(4)
    def invoke_trial(self) -> None:
        if random.random() < 0.5:
            self._native("trial", stream=False, name="POST /api/v1/agents/{id}/invoke [Trial]")
        else:
            self._chat("trial", stream=False, name="POST /v1/chat/completions [Trial]")

    # --- catalog ----------------------------------------------------------------------

    def _get(self, url: str, name: str, headers: dict | None = None) -> dict | None:
        with self.client.get(url, headers=headers, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_why(response))
                return None
            return response.json()

    @task(4)
    def browse_catalog(self) -> None:
        self._get("/api/v1/catalog/", "GET /api/v1/catalog/")

    @task(2)
    def browse_category(self) -> None:
        category = random.choice(DATA["categories"])
        self._get(f"/api/v1/catalog/?category={category}", "GET /api/v1/catalog/?category=")

    @task(2)
    def search_catalog(self) -> None:
        vendor = random.randrange(4)
        self._get(f"/api/v1/catalog/?q=vendor+{vendor}", "GET /api/v1/catalog/?q=")

    # --- usage ------------------------------------------------------------------------

    @task(3)
    def read_usage_records(self) -> None:
        sub = self.subs[random.choice(("free", "metered"))]["subscription"]
        self._get(
            f"/api/v1/usage/records/?subscription={sub}",
            "GET /api/v1/usage/records/?subscription=",
            headers=self.auth,
        )

    @task(1)
    def read_usage_daily(self) -> None:
        self._get(
            f"/api/v1/usage/daily/?tenant={self.customer['tenant']}",
            "GET /api/v1/usage/daily/?tenant=",
            headers=self.auth,
        )

    # --- subscribe, use, unsubscribe --------------------------------------------------

    @task(1)
    def subscribe_and_unsubscribe(self) -> None:
        agent = random.choice(DATA["agents"])
        with self.client.post(
            "/api/v1/subscriptions/",
            json={
                "agent": agent["agent_id"],
                "plan": agent["free_plan"],
                "project": self.project,
                "name": "load trial",
            },
            headers=self.auth,
            name="POST /api/v1/subscriptions/",
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(_why(response))
                return
            issued = response.json()
        with self.client.post(
            f"/api/v1/agents/{agent['agent_id']}/invoke",
            json={"input": "first call with a new key"},
            headers={"X-API-Key": issued["api_key"]},
            name="POST /api/v1/agents/{id}/invoke (new key)",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_why(response))
        with self.client.post(
            f"/api/v1/subscriptions/{issued['id']}/revoke/",
            json={"reason": "load test: done"},
            headers=self.auth,
            name="POST /api/v1/subscriptions/{id}/revoke/",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_why(response))
