"""What a caller sees of a runtime failure: the contract's code and a generic message.

Whatever went wrong on the provider's side (host, address, port, upstream status and
body), the customer's answer — JSON or an event stream, native invoke or the OpenAI
surface — says only ``runtime_error`` / ``runtime_timeout`` and the class's message. The
detail goes to the log line of the call and to its usage record, for the provider.
"""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass

import httpx
import pytest

from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.gateway.errors import RuntimeFailed, RuntimeTimedOut
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.fakes.openai_upstream import FakeOpenAIUpstream

SECRET = "sk-fake-openai-key-0123456789"


@dataclass(frozen=True)
class Fault:
    name: str
    status: int
    detail: str  # a fragment the internal detail must contain
    # Other fragments that describe the same failure equally well: a slow upstream is
    # caught by the adapter's read timeout or by the call's overall deadline, whichever
    # fires first on a busy machine.
    alternatives: tuple[str, ...] = ()

    def described_by(self, detail: str) -> bool:
        return any(part in detail for part in (self.detail, *self.alternatives))


FAULTS = [
    Fault("refused", 502, "unreachable"),
    Fault("private", 502, "Loopback, private"),
    Fault("500", 502, "HTTP 500"),
    Fault("garbage", 502, "not JSON"),
    Fault("error_event", 502, "reported an error: {'message': 'model overloaded'"),
    Fault(
        "slow",
        504,
        "the OpenAI-compatible upstream timed out",
        alternatives=("the runtime did not answer within 1 s",),
    ),
]
MID_STREAM = Fault("close_mid_stream", 502, "connection failed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def upstream():
    with FakeOpenAIUpstream(api_key=SECRET) as fake:
        fake.slow_seconds = 2.0
        yield fake


def subscribe(endpoint: str):
    project = factories.ProjectFactory()
    factories.make_runtime_secret(project.tenant, "OPENAI_KEY", SECRET)
    agent = factories.make_agent(
        project=project,
        agent_id="llm",
        runtime=RuntimeDescription(
            type="openai", endpoint=endpoint, model="fake-model", api_key_ref="OPENAI_KEY"
        ),
        timeout_seconds=1,
    )
    return factories.make_subscription(agent=agent, monthly_quota=50, rate_limit_per_second=100)


def arrange(fault: Fault, upstream: FakeOpenAIUpstream, settings) -> tuple[object, list[str]]:
    """The subscription to call, and what must never reach the caller."""
    endpoint = upstream.v1
    if fault.name == "refused":
        endpoint = f"http://127.0.0.1:{_free_port()}/v1"
    issued = subscribe(endpoint)
    if fault.name == "private":
        settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = False  # registered while it was allowed
    elif fault.name != "refused":
        upstream.set_fault(fault.name)
    port = endpoint.split(":")[2].split("/")[0]
    leaks = ["127.0.0.1", f":{port}", "HTTP 5", "upstream exploded", "model overloaded"]
    leaks.append("OpenAI-compatible")
    return issued, [*leaks, "RUNTIME_", SECRET, "Loopback", "unreachable", "not JSON"]


def call(gateway, issued, *, surface: str, stream: bool) -> httpx.Response:
    if surface == "native":
        path, body = "/api/v1/agents/llm/invoke", {"input": "say hi", "stream": stream}
    else:
        path = "/v1/chat/completions"
        body = {"model": "llm", "messages": [{"role": "user", "content": "say hi"}]}
        body["stream"] = stream
    with gateway.client(issued.api_key) as client:
        return client.post(path, json=body)


def error_of(response: httpx.Response, *, surface: str, stream: bool) -> dict:
    """The error object the caller received: the JSON envelope or the stream's error event."""
    if not stream:
        return response.json()["error"]
    events = [block for block in response.text.split("\n\n") if block.strip()]
    if surface == "native":
        [error_event] = [e for e in events if e.startswith("event: error\n")]
        return json.loads(error_event.removeprefix("event: error\ndata: "))["error"]
    [error_event] = [e for e in events if e.startswith('data: {"error"')]
    assert events[-1] == "data: [DONE]"
    return json.loads(error_event.removeprefix("data: "))["error"]


def runtime_failed_lines(caplog, request_id: str) -> list[dict]:
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict)
        and record.msg.get("event") == "runtime_failed"
        and record.msg.get("request_id") == request_id
    ]


VARIANTS = [(surface, stream) for surface in ("native", "openai") for stream in (False, True)]


@pytest.mark.parametrize("fault", [*FAULTS, MID_STREAM], ids=lambda fault: fault.name)
def test_the_caller_sees_the_code_and_a_generic_message_and_the_provider_the_detail(
    live_gateway, upstream, settings, caplog, fault
):
    issued, leaks = arrange(fault, upstream, settings)
    expected = RuntimeTimedOut if fault.status == 504 else RuntimeFailed
    # Native invoke and the OpenAI surface, plain JSON and streamed (a failure mid-stream
    # only exists in a stream).
    variants = [
        (surface, stream) for surface, stream in VARIANTS if stream or fault is not MID_STREAM
    ]

    for surface, stream in variants:
        with caplog.at_level(logging.WARNING, logger="agent_registry.gateway"):
            response = call(live_gateway, issued, surface=surface, stream=stream)

        request_id = response.headers["X-Request-ID"]
        assert response.status_code == (200 if stream else fault.status), response.text
        assert error_of(response, surface=surface, stream=stream) == {
            "code": expected.code,
            "message": expected.default_message,
            "request_id": request_id,
        }
        for leak in leaks:
            assert leak not in response.text, (surface, stream, leak)
        record = UsageRecord.objects.get(request_id=request_id)
        assert record.response_status == fault.status
        assert fault.described_by(record.error_detail), record.error_detail
        assert SECRET not in record.error_detail
        [line] = runtime_failed_lines(caplog, request_id)
        assert line["detail"] == record.error_detail
        assert (line["code"], line["status"], line["agent"]) == (expected.code, fault.status, "llm")


def test_an_upstream_echoing_the_key_has_it_redacted_from_the_detail(
    live_gateway, upstream, caplog
):
    issued = subscribe(upstream.v1)
    upstream.set_fault("500")
    upstream.error_body = {"error": {"message": f"bad key {SECRET}"}}

    with caplog.at_level(logging.WARNING):
        response = call(live_gateway, issued, surface="native", stream=False)

    record = UsageRecord.objects.get(request_id=response.headers["X-Request-ID"])
    assert "bad key [redacted]" in record.error_detail
    assert SECRET not in caplog.text
