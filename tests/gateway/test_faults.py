"""Runtime faults and client disconnects: a clear status, no hang, no leaked slot, and
a usage record that says what really happened."""

from __future__ import annotations

import httpx
import pytest

from agent_registry.access.models import AgentAccess
from agent_registry.agents.runtime import RuntimeDescription
from agent_registry.usage.models import UsageRecord
from tests import factories
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.waiting import WAIT_SECONDS, wait_until


@pytest.fixture
def upstream():
    with FakeOpenAIUpstream(api_key="sk-fake-openai-key") as fake:
        fake.slow_seconds = 2.0
        yield fake


@pytest.fixture
def llm_subscription(transactional_db, upstream, settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True
    provider = factories.ProjectFactory()
    factories.make_runtime_secret(provider.tenant, "OPENAI_KEY", "sk-fake-openai-key")
    agent = factories.make_agent(
        project=provider,
        agent_id="llm",
        runtime=RuntimeDescription(
            type="openai", endpoint=upstream.v1, model="fake-model", api_key_ref="OPENAI_KEY"
        ),
        max_concurrent_requests=1,
        timeout_seconds=1,
    )
    return factories.make_subscription(agent=agent, monthly_quota=50, rate_limit_per_second=100)


def call(gateway, issued, **body):
    with gateway.client(issued.api_key) as client:
        return client.post("/api/v1/agents/llm/invoke", json={"input": "say hi", **body})


def test_a_working_runtime_reports_real_token_counts(live_gateway, llm_subscription):
    response = call(live_gateway, llm_subscription)

    assert response.status_code == 200
    assert response.json()["output"] == "echo: say hi"
    assert UsageRecord.objects.get().tokens_estimated is False


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("500", 502, "runtime_error"),
        ("garbage", 502, "runtime_error"),
        ("bad_shape", 502, "runtime_error"),
        ("slow", 504, "runtime_timeout"),
    ],
)
def test_a_failing_runtime_is_recorded_unbilled_and_frees_its_slot(
    live_gateway, llm_subscription, upstream, fault, status, code
):
    upstream.set_fault(fault)

    response = call(live_gateway, llm_subscription)

    # A hang would end in the client's own timeout; "slow" answering 504 shows the
    # gateway gave up at the agent's 1 s timeout, not after the runtime's 2 s.
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    record = UsageRecord.objects.get()
    assert (record.response_status, record.billable) == (status, False)
    assert AgentAccess.objects.get(pk=llm_subscription.access.pk).quota_used == 0
    upstream.set_fault(None)
    # max_concurrent_requests is 1: the next call only works if the slot came back.
    assert call(live_gateway, llm_subscription).status_code == 200


def test_a_client_that_leaves_mid_stream_is_billed_for_what_it_got(
    live_gateway, llm_subscription, upstream, settings
):
    upstream.set_fault("stall_mid_stream")  # first word, then a pause
    settings.GATEWAY_MAX_BODY_BYTES = 10_000

    with (
        httpx.Client(base_url=live_gateway.url, timeout=WAIT_SECONDS) as client,
        client.stream(
            "POST",
            "/api/v1/agents/llm/invoke",
            json={"input": "say hi", "stream": True},
            headers={"X-API-Key": llm_subscription.api_key},
        ) as response,
    ):
        request_id = response.headers["X-Request-ID"]
        for line in response.iter_lines():
            if line.startswith("event: token"):
                break  # got the first piece; hang up

    # The gateway notices the hang-up after the answer began: its record follows.
    record = wait_until(
        UsageRecord.objects.filter(request_id=request_id).first,
        what=f"the usage record of {request_id}",
    )
    assert record.response_status == 499
    assert record.partial is True
    assert record.billable is True
    assert record.tokens_output > 0
    assert record.streamed is True


def test_a_runtime_that_dies_mid_stream_ends_the_stream_with_an_error_event(
    live_gateway, llm_subscription, upstream
):
    upstream.set_fault("close_mid_stream")

    with (
        httpx.Client(base_url=live_gateway.url, timeout=WAIT_SECONDS) as client,
        client.stream(
            "POST",
            "/api/v1/agents/llm/invoke",
            json={"input": "say hi", "stream": True},
            headers={"X-API-Key": llm_subscription.api_key},
        ) as response,
    ):
        body = response.read().decode()

    assert "event: token" in body
    assert "event: error" in body
    assert '"runtime_error"' in body
    record = UsageRecord.objects.get()
    assert record.response_status == 502
    assert record.partial is True
    assert record.billable is True  # a piece was delivered: never metered as zero
    assert call(live_gateway, llm_subscription).status_code in {200, 502}  # slot is free
