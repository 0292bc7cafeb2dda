"""Hostile request bodies and hostile runtime answers on the gateway: never a 5xx.

Deep nesting, lone surrogates and NULs in any string, NaN/Infinity and numbers past a
float, duplicate keys: each answers 400 ``validation_error`` in the envelope, on both
entry points, streamed or not, and is counted and logged like any call. Whatever a
runtime answers is encoded safely, and an answer is made before its call is billed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

import httpx
import pytest

from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.gateway import calls, native, openai_api
from agent_registry.gateway.metrics import requests_total
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.fakes.http_server import Exchange, FakeHTTPServer
from tests.fakes.openai_upstream import FakeOpenAIUpstream

INVOKE = "/api/v1/agents/echo/invoke"
CHAT = "/v1/chat/completions"
ENDPOINT_LABEL = {INVOKE: "invoke", CHAT: "chat.completions"}
SURROGATE = "\ud800"


def raw(body: dict) -> bytes:
    """JSON as a lax encoder writes it: lone surrogates escaped, NaN/Infinity literal."""
    return json.dumps(body).encode()


def invoke(**fields) -> bytes:
    return raw({"input": "hello", **fields})


def chat(**fields) -> bytes:
    return raw({"model": "echo", "messages": [{"role": "user", "content": "hello"}], **fields})


def chat_message(**message) -> bytes:
    return chat(messages=[{"role": "user", "content": "hello", **message}])


DEEP = b"[" * 100_000 + b"]" * 100_000

# (id, path, body, the key ``details`` must name)
HOSTILE = [
    ("invoke nested 100000 deep", INVOKE, b'{"input": ' + DEEP + b"}", "body"),
    (
        "invoke variables nested 40 deep",
        INVOKE,
        invoke(variables=json.loads("[" * 40 + "]" * 40)),
        "body",
    ),
    ("invoke lone surrogate in input", INVOKE, invoke(input=f"a{SURROGATE}b"), "input"),
    ("invoke lone low surrogate in input", INVOKE, invoke(input="\udfff"), "input"),
    ("invoke lone surrogate in session_id", INVOKE, invoke(session_id=SURROGATE), "session_id"),
    (
        "invoke lone surrogate in a variable",
        INVOKE,
        invoke(variables={"k": SURROGATE}),
        "variables",
    ),
    (
        "invoke lone surrogate in a variable's name",
        INVOKE,
        invoke(variables={SURROGATE: "v"}),
        "variables",
    ),
    ("invoke lone surrogate in a key", INVOKE, invoke(**{SURROGATE: 1}), "body"),
    ("invoke NUL in a variable", INVOKE, invoke(variables={"k": "a\x00b"}), "variables"),
    ("invoke NUL in a variable's name", INVOKE, invoke(variables={"a\x00": "v"}), "variables"),
    ("invoke NaN variable", INVOKE, invoke(variables={"k": float("nan")}), "body"),
    ("invoke Infinity variable", INVOKE, invoke(variables={"k": float("inf")}), "body"),
    ("invoke -Infinity variable", INVOKE, invoke(variables={"k": float("-inf")}), "body"),
    ("invoke 1e999 variable", INVOKE, b'{"input": "hi", "variables": {"k": 1e999}}', "body"),
    (
        "invoke 5000-digit variable",
        INVOKE,
        b'{"input": "hi", "variables": {"k": ' + b"9" * 5000 + b"}}",
        "body",
    ),
    ("invoke duplicate key", INVOKE, b'{"input": "hi", "input": "there"}', "body"),
    ("invoke not UTF-8", INVOKE, b'{"input": "\xff\xfe"}', "body"),
    ("chat nested 100000 deep", CHAT, b'{"model": "echo", "metadata": ' + DEEP + b"}", "body"),
    ("chat lone surrogate in model", CHAT, chat(model=f"echo{SURROGATE}"), "model"),
    ("chat lone surrogate in content", CHAT, chat_message(content=SURROGATE), "messages"),
    (
        "chat lone surrogate in a text part",
        CHAT,
        chat_message(content=[{"type": "text", "text": SURROGATE}]),
        "messages",
    ),
    ("chat lone surrogate in role", CHAT, chat_message(role=SURROGATE), "messages"),
    ("chat lone surrogate in user", CHAT, chat(user=SURROGATE), "user"),
    ("chat lone surrogate in session_id", CHAT, chat(session_id=SURROGATE), "session_id"),
    ("chat lone surrogate in a variable", CHAT, chat(variables={"k": SURROGATE}), "variables"),
    ("chat lone surrogate in stop", CHAT, chat(stop=[SURROGATE]), "stop"),
    ("chat NUL in model", CHAT, chat(model="echo\x00"), "model"),
    ("chat NUL in role", CHAT, chat_message(role="user\x00"), "messages"),
    ("chat NaN temperature", CHAT, chat(temperature=float("nan")), "body"),
    ("chat Infinity temperature", CHAT, chat(temperature=float("inf")), "body"),
    ("chat -Infinity top_p", CHAT, chat(top_p=float("-inf")), "body"),
    ("chat 1e999 max_tokens", CHAT, b'{"model": "echo", "max_tokens": 1e999}', "body"),
    ("chat huge max_tokens", CHAT, chat(max_tokens=10**30), "max_tokens"),
    ("chat duplicate model", CHAT, b'{"model": "echo", "model": "other", "messages": []}', "body"),
]


def streamed(body: bytes) -> bytes:
    """The same body asking for a stream (first key, so a later one cannot hide it)."""
    return b'{"stream": true, ' + body[1:]


def requests_counted(path: str, status: int) -> float:
    """Requests of ``path``'s endpoint answered ``status``, whatever the agent."""
    wanted = {"endpoint": ENDPOINT_LABEL[path], "status": str(status)}
    return sum(
        sample.value
        for family in requests_total.collect()
        for sample in family.samples
        if sample.name == "agent_registry_requests_total"
        and all(sample.labels.get(k) == v for k, v in wanted.items())
    )


def logged_calls(caplog, request_id: str) -> list[dict]:
    return [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict)
        and r.msg.get("event") == "gateway_call"
        and r.msg.get("request_id") == request_id
    ]


def eventually(condition, what: str) -> None:
    """The call is logged and counted just after its answer is sent: wait for it."""
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.01)


def assert_envelope(response: httpx.Response, code: str) -> dict:
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    body = response.json()
    assert list(body) == ["error"], body
    assert body["error"]["code"] == code, body
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]
    return body["error"]


def check_hostile(client, caplog, name: str, path: str, body: bytes, field: str) -> None:
    counted_before = requests_counted(path, 400)

    response = client.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, f"{name}: {response.text[:500]}"
    error = assert_envelope(response, "validation_error")
    assert field in error.get("details", {}), f"{name}: {error}"
    request_id = response.headers["X-Request-ID"]
    eventually(lambda: logged_calls(caplog, request_id), f"{name}: not logged")
    [line] = logged_calls(caplog, request_id)
    assert (line["status"], line["endpoint"]) == (400, ENDPOINT_LABEL[path]), name
    eventually(lambda: requests_counted(path, 400) == counted_before + 1, f"{name}: not counted")


# One live gateway per test, all the table's bodies through it (a gateway per body
# would cost seconds each).
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("path", [INVOKE, CHAT], ids=["invoke", "chat"])
def test_a_hostile_body_is_a_400_counted_and_logged_like_any_call(
    live_gateway, echo_subscription, caplog, path, stream
):
    cases = [case for case in HOSTILE if case[1] == path]
    failures = []
    with (
        caplog.at_level(logging.INFO, logger="agent_registry.gateway"),
        live_gateway.client(echo_subscription.api_key) as client,
    ):
        for name, _, body, field in cases:
            try:
                check_hostile(client, caplog, name, path, streamed(body) if stream else body, field)
            except AssertionError as failure:
                failures.append(str(failure))

    assert not failures, "\n".join(failures)
    assert not UsageRecord.objects.exists()


# --- What a runtime answers ------------------------------------------------------------


class CannedRuntime(FakeHTTPServer):
    """A plain ``http`` runtime that answers every call with the same raw bytes."""

    def __init__(self, answer: bytes) -> None:
        super().__init__()
        self.answer = answer

    def handle(self, exchange: Exchange) -> None:
        exchange.send(200, self.answer)


# Lone surrogates in the runtime's JSON: legal JSON text, not encodable as UTF-8.
SURROGATE_ANSWER = (
    b'{"output": "bad \\ud800 and \\udfff end", "usage": {"tokens_input": 2, "tokens_output": 4}}'
)


def subscription_to(runtime: CannedRuntime):
    agent = factories.make_agent(
        agent_id="echo",
        runtime=RuntimeDescription(type="http", endpoint=f"{runtime.base_url}/run"),
    )
    return factories.make_subscription(agent=agent, rate_limit_per_second=100)


@pytest.fixture
def surrogate_subscription(transactional_db, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    with CannedRuntime(SURROGATE_ANSWER) as runtime:
        yield subscription_to(runtime)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("path", [INVOKE, CHAT])
def test_a_runtime_reporting_tokens_past_the_ceiling_is_a_502_not_billed(
    live_gateway, transactional_db, settings, path, stream
):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    answer = b'{"output": "hi", "usage": {"tokens_input": 1099511627776, "tokens_output": 1}}'
    body = chat() if path == CHAT else invoke()
    with CannedRuntime(answer) as runtime:
        issued = subscription_to(runtime)
        with live_gateway.client(issued.api_key) as client:
            response = client.post(path, content=streamed(body) if stream else body)

    if stream:
        assert '"runtime_error"' in response.text
    else:
        assert response.status_code == 502
        assert_envelope(response, "runtime_error")
    record = UsageRecord.objects.get()
    assert (record.response_status, record.billable) == (502, False)


@pytest.mark.parametrize("path", [INVOKE, CHAT])
def test_lone_surrogates_from_the_runtime_are_delivered_replaced(
    live_gateway, surrogate_subscription, path
):
    with live_gateway.client(surrogate_subscription.api_key) as client:
        response = client.post(path, content=chat() if path == CHAT else invoke())

    assert response.status_code == 200, response.text[:500]
    body = response.json()
    output = body["output"] if path == INVOKE else body["choices"][0]["message"]["content"]
    assert output == "bad \ufffd and \ufffd end"
    assert UsageRecord.objects.get().billable is True


@pytest.mark.parametrize("path", [INVOKE, CHAT])
def test_lone_surrogates_from_the_runtime_are_streamed_replaced(
    live_gateway, surrogate_subscription, path
):
    body = streamed(chat() if path == CHAT else invoke())
    with live_gateway.client(surrogate_subscription.api_key) as client:
        response = client.post(path, content=body)

    assert response.status_code == 200
    text = response.content.decode("utf-8")  # strict: fails on an encoded surrogate
    assert "bad \ufffd and \ufffd end" in text
    assert '"error"' not in text


# --- An answer that cannot be delivered is not billed -------------------------------------


@pytest.mark.parametrize("path", [INVOKE, CHAT])
def test_an_answer_that_cannot_be_made_is_never_billed(
    live_gateway, echo_subscription, monkeypatch, path
):
    def broken(body):
        raise RuntimeError("encoder bug")

    monkeypatch.setattr(calls, "encode_json", broken)

    with live_gateway.client(echo_subscription.api_key) as client:
        response = client.post(path, content=chat() if path == CHAT else invoke())

    assert response.status_code == 500
    assert_envelope(response, "internal_error")
    assert not UsageRecord.objects.filter(billable=True).exists()


@pytest.mark.parametrize(
    ("path", "stream_format"), [(INVOKE, native.NativeStream), (CHAT, openai_api.ChunkStream)]
)
def test_a_stream_end_that_cannot_be_made_is_never_billed(
    live_gateway, echo_subscription, monkeypatch, path, stream_format
):
    def broken(self, outcome):
        raise RuntimeError("encoder bug")

    monkeypatch.setattr(stream_format, "end", broken)

    with (
        live_gateway.client(echo_subscription.api_key) as client,
        contextlib.suppress(httpx.RemoteProtocolError),  # the stream is cut
    ):
        client.post(path, content=streamed(chat() if path == CHAT else invoke()))

    assert not UsageRecord.objects.filter(billable=True).exists()


@pytest.fixture
def slow_subscription(transactional_db, monkeypatch, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    project = factories.ProjectFactory()
    factories.make_runtime_secret(project.tenant, "OPENAI_KEY", "sk-fake-openai-key")
    with FakeOpenAIUpstream(api_key="sk-fake-openai-key") as upstream:
        upstream.set_fault("slow")
        upstream.slow_seconds = 1.5
        agent = factories.make_agent(
            project=project,
            agent_id="echo",
            runtime=RuntimeDescription(
                type="openai", endpoint=upstream.v1, model="m", api_key_ref="OPENAI_KEY"
            ),
            timeout_seconds=5,
        )
        yield factories.make_subscription(agent=agent, rate_limit_per_second=100)


def wait_for_record() -> UsageRecord:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        record = UsageRecord.objects.first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError("no usage record")


@pytest.mark.parametrize("path", [INVOKE, CHAT])
def test_a_client_gone_before_a_plain_answer_is_recorded_and_not_billed(
    live_gateway, slow_subscription, path
):
    body = chat() if path == CHAT else invoke()
    with (
        live_gateway.client(slow_subscription.api_key) as client,
        pytest.raises(httpx.ReadTimeout),  # hangs up while the runtime works
    ):
        client.post(path, content=body, timeout=httpx.Timeout(10, read=0.3))

    record = wait_for_record()
    assert (record.response_status, record.billable) == (499, False)
