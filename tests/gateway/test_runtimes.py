"""Runtime adapters against fake upstreams speaking the real wire formats.

Every adapter either returns a RuntimeResult (or a stream ending in one) or raises
RuntimeFailed (502) / RuntimeTimedOut (504) — quickly, whatever the upstream does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import math
import re
import socket
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import aclosing
from typing import Any

import aiohappyeyeballs
import aiohttp
import pytest

from agent_registry.agents.runtime import validate_endpoint
from agent_registry.core.errors import ValidationFailed
from agent_registry.gateway import http_client
from agent_registry.gateway.errors import RuntimeFailed, RuntimeTimedOut, UpstreamError
from agent_registry.gateway.runtimes import get_adapter, langflow
from agent_registry.gateway.runtimes.base import (
    ChatMessage,
    RuntimeCall,
    RuntimeResult,
    RuntimeTarget,
    Usage,
)
from agent_registry.gateway.runtimes.echo import split_pieces
from agent_registry.gateway.runtimes.http import parse_answer
from agent_registry.secrets import cache as secret_cache
from tests.fakes import langflow as lf
from tests.fakes.langflow import FakeLangflow
from tests.fakes.openai_upstream import FakeOpenAIUpstream
from tests.fakes.secrets import InMemorySecrets
from tests.waiting import WAIT_SECONDS, bound_socket

QUESTION = "What is the capital of France?"
ANSWER = "echo: What is the capital of France?"


# --- Harness -----------------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, Any], limit: float = 10.0) -> Any:
    """Run one async step on a fresh loop, never longer than ``limit``, then close clients."""

    async def main() -> Any:
        try:
            async with asyncio.timeout(limit):
                return await coro
        finally:
            await http_client.close_clients()

    return asyncio.run(main())


async def collect(stream: AsyncIterator[str | RuntimeResult]) -> tuple[list[str], RuntimeResult]:
    pieces: list[str] = []
    result: RuntimeResult | None = None
    async with aclosing(stream) as items:
        async for item in items:
            assert result is None, "nothing may follow the RuntimeResult"
            if isinstance(item, RuntimeResult):
                result = item
            else:
                assert isinstance(item, str)
                pieces.append(item)
    assert result is not None, "a stream ends with exactly one RuntimeResult"
    return pieces, result


async def collect_until_error(
    stream: AsyncIterator[str | RuntimeResult],
) -> tuple[list[str], Exception]:
    pieces: list[str] = []
    try:
        async with aclosing(stream) as items:
            async for item in items:
                assert isinstance(item, str), "no result may come from a failed stream"
                pieces.append(item)
    except Exception as exc:
        return pieces, exc
    raise AssertionError(f"the stream did not fail; it yielded {pieces!r}")


@contextlib.contextmanager
def fails_with(kind: type[UpstreamError], pattern: str) -> Iterator[None]:
    """Expect ``kind``, its internal detail matching ``pattern`` (its message is generic)."""
    with pytest.raises(kind) as caught:
        yield
    assert re.search(pattern, caught.value.detail), caught.value.detail
    assert caught.value.message == kind.default_message


def timed(coro: Coroutine[Any, Any, Any]) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        outcome: Any = run(coro)
    except Exception as exc:
        outcome = exc
    return outcome, time.monotonic() - started


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture(autouse=True)
def _fresh_dns_cache():
    http_client._dns_cache.clear()
    yield
    http_client._dns_cache.clear()


# The tenant that owns the agents of these tests; secrets resolve for it alone.
PROVIDER = "provider-tenant"


@pytest.fixture(autouse=True)
def runtime_secrets(settings) -> Iterator[dict[tuple[str, str], str]]:
    """(tenant id, name) → value, through an in-memory secrets backend."""
    settings.RUNTIME_SECRETS_BACKEND = "tests.fakes.secrets.InMemorySecrets"
    InMemorySecrets.values.clear()
    secret_cache.clear()
    yield InMemorySecrets.values
    InMemorySecrets.values.clear()
    secret_cache.clear()


# A slow fake runtime answers only after this (or when it stops): a call that returns
# sooner gave up by its own timeout, however slow the machine running the test is.
SLOWER_THAN_ANY_TIMEOUT = WAIT_SECONDS


@pytest.fixture
def fake_langflow(runtime_secrets):
    runtime_secrets[PROVIDER, "LANGFLOW_KEY"] = lf.API_KEY
    with FakeLangflow() as fake:
        fake.slow_seconds = SLOWER_THAN_ANY_TIMEOUT
        yield fake


@pytest.fixture
def fake_openai(runtime_secrets):
    runtime_secrets[PROVIDER, "OPENAI_KEY"] = "sk-fake-openai-key"
    with FakeOpenAIUpstream(api_key="sk-fake-openai-key") as fake:
        fake.slow_seconds = SLOWER_THAN_ANY_TIMEOUT
        yield fake


def langflow_call(
    fake: FakeLangflow,
    *,
    flow: str = lf.FAKE_LLM_FLOW_ID,
    text: str = QUESTION,
    api_key_ref: str = "LANGFLOW_KEY",
    timeout: float = 5.0,
    endpoint: str | None = None,
    **options: Any,
) -> RuntimeCall:
    target = RuntimeTarget(
        agent_id="lf-agent",
        name="Langflow agent",
        runtime_type="langflow",
        endpoint=endpoint or fake.base_url,
        flow_id=flow,
        api_key_ref=api_key_ref,
        timeout_seconds=timeout,
        owner_tenant_id=PROVIDER,
    )
    return RuntimeCall(
        target=target, request_id="req-1", input=text, session_id="sess-1", **options
    )


def openai_call(
    fake: FakeOpenAIUpstream,
    *,
    text: str = "hello there",
    api_key_ref: str = "OPENAI_KEY",
    timeout: float = 5.0,
    **options: Any,
) -> RuntimeCall:
    target = RuntimeTarget(
        agent_id="oa-agent",
        name="OpenAI agent",
        runtime_type="openai",
        endpoint=fake.v1,
        model="gpt-fake",
        api_key_ref=api_key_ref,
        timeout_seconds=timeout,
        owner_tenant_id=PROVIDER,
    )
    return RuntimeCall(
        target=target, request_id="req-2", input=text, session_id="sess-2", **options
    )


def http_call(
    fake: FakeOpenAIUpstream, *, api_key_ref: str = "OPENAI_KEY", timeout: float = 5.0, **opts: Any
) -> RuntimeCall:
    target = RuntimeTarget(
        agent_id="http-agent",
        name="HTTP agent",
        runtime_type="http",
        endpoint=f"{fake.base_url}/run",
        api_key_ref=api_key_ref,
        timeout_seconds=timeout,
        owner_tenant_id=PROVIDER,
    )
    return RuntimeCall(
        target=target, request_id="req-3", input="ping pong", session_id="sess-3", **opts
    )


def estimate(text: str) -> int:
    return math.ceil(len(text) / 4)


# --- Registry and echo -------------------------------------------------------------------


@pytest.mark.parametrize("runtime_type", ["echo", "langflow", "openai", "http"])
def test_every_runtime_type_has_one_shared_adapter(runtime_type):
    assert get_adapter(runtime_type) is get_adapter(runtime_type)


def test_an_unknown_runtime_type_is_a_runtime_failure():
    with fails_with(RuntimeFailed, "unknown runtime type"):
        get_adapter("carrier-pigeon")


def echo_call(text: str, **options: Any) -> RuntimeCall:
    target = RuntimeTarget(agent_id="echo", name="Echo", runtime_type="echo")
    return RuntimeCall(target=target, request_id="r", input=text, session_id="s", **options)


def test_echo_answers_its_input_with_estimated_usage():
    result = run(get_adapter("echo").invoke(echo_call("hello world")))
    assert result == RuntimeResult("hello world", Usage(3, 3, estimated=True), "s")


def test_echo_is_literal_even_with_a_system_prompt():
    result = run(get_adapter("echo").invoke(echo_call("hi", system_prompt="Be a pirate.")))
    assert result.output == "hi"
    assert result.usage.estimated


def test_echo_streams_word_pieces_then_the_result():
    text = " one two  three four five six seven eight nine ten eleven twelve "
    pieces, result = run(collect(get_adapter("echo").stream(echo_call(text))))
    assert "".join(pieces) == text == result.output
    assert 1 < len(pieces) <= 8


@pytest.mark.parametrize("text", ["", "   ", "word", "a b", "x " * 100])
def test_split_pieces_always_joins_back_to_the_text(text):
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) <= 8


# --- Langflow: happy paths -----------------------------------------------------------------


def test_langflow_invoke_reads_text_and_flow_usage(fake_langflow):
    result = run(get_adapter("langflow").invoke(langflow_call(fake_langflow)))

    assert result.output == ANSWER
    assert result.usage == Usage(6, 7, estimated=False)
    assert result.session_id == "sess-1"


def test_langflow_request_is_built_by_the_registry(fake_langflow):
    run(get_adapter("langflow").invoke(langflow_call(fake_langflow)))

    [request] = fake_langflow.runs
    assert request.path == f"/api/v1/run/{lf.FAKE_LLM_FLOW_ID}"
    assert request.query == {"stream": ["false"]}
    assert request.headers["x-api-key"] == lf.API_KEY
    assert "authorization" not in request.headers
    assert request.json == {
        "input_value": QUESTION,
        "input_type": "chat",
        "output_type": "chat",
        "session_id": "sess-1",
        "tweaks": {},
    }


def test_langflow_null_usage_is_estimated(fake_langflow):
    call = langflow_call(fake_langflow, flow=lf.ECHO_ENDPOINT, text="Hello from the gateway")
    result = run(get_adapter("langflow").invoke(call))

    assert result.output == "Hello from the gateway"
    assert result.usage == Usage(estimate(call.input), estimate(result.output), estimated=True)
    assert fake_langflow.runs[0].path == "/api/v1/run/echo-agent"


def test_langflow_stream_yields_each_token_then_the_end_result(fake_langflow):
    pieces, result = run(collect(get_adapter("langflow").stream(langflow_call(fake_langflow))))

    assert pieces == ["echo:", " What", " is", " the", " capital", " of", " France?"]
    assert result.output == ANSWER
    assert result.usage == Usage(6, 7)
    assert fake_langflow.runs[0].query == {"stream": ["true"]}


def test_langflow_stream_without_tokens_yields_the_end_text_once(fake_langflow):
    call = langflow_call(fake_langflow, flow=lf.ECHO_FLOW_ID, text="no tokens here")
    pieces, result = run(collect(get_adapter("langflow").stream(call)))

    assert pieces == ["no tokens here"]
    assert result.output == "no tokens here"
    assert result.usage.estimated


def test_langflow_variables_and_configuration_become_global_variable_headers(fake_langflow):
    call = langflow_call(
        fake_langflow,
        variables={"customer-name": "José", "tier": "gold", "SYSTEM_PROMPT": "caller's"},
        system_prompt="Be brief.\nAlways polite.",
        temperature=0.2,
        max_tokens=100,
    )
    run(get_adapter("langflow").invoke(call))

    headers = fake_langflow.runs[0].headers
    # Header bytes are UTF-8; an HTTP server reads them as Latin-1, as Starlette does.
    name = headers["x-langflow-global-var-customer_name"]
    assert name.encode("latin-1").decode("utf-8") == "José"
    assert headers["x-langflow-global-var-tier"] == "gold"
    assert headers["x-langflow-global-var-system_prompt"] == "Be brief.\\nAlways polite."
    assert headers["x-langflow-global-var-temperature"] == "0.2"
    assert headers["x-langflow-global-var-max_tokens"] == "100"
    # The flow gets the configuration only through those variables, never in the body.
    assert set(fake_langflow.runs[0].json) == {
        "input_value",
        "input_type",
        "output_type",
        "session_id",
        "tweaks",
    }


@pytest.mark.parametrize(
    "variables",
    [
        {"note": "two\r\nlines"},
        {"note": "bell\x07"},
        {"count": 3},
        {"---": "x"},
        {"a-b": "1", "A_B": "2"},
    ],
)
def test_langflow_refuses_variables_it_cannot_send_safely(fake_langflow, variables):
    with fails_with(RuntimeFailed, "variable"):
        run(get_adapter("langflow").invoke(langflow_call(fake_langflow, variables=variables)))
    assert fake_langflow.runs == []


def test_langflow_refuses_a_flow_id_that_would_change_the_path(fake_langflow):
    with fails_with(RuntimeFailed, "flow_id"):
        run(get_adapter("langflow").invoke(langflow_call(fake_langflow, flow="../admin")))
    assert fake_langflow.requests == []


# --- Langflow: secrets and upstream refusals ------------------------------------------------


def test_a_missing_runtime_secret_is_logged_generic_to_the_caller_and_nothing_is_sent(
    fake_langflow, caplog
):
    call = langflow_call(fake_langflow, api_key_ref="NOT_SET_ANYWHERE")
    with pytest.raises(RuntimeFailed) as caught:
        run(get_adapter("langflow").invoke(call))
    assert caught.value.message == RuntimeFailed.default_message
    assert "NOT_SET_ANYWHERE" in caplog.text
    assert fake_langflow.requests == []


def test_a_secret_of_another_tenant_is_not_sent(fake_langflow, runtime_secrets):
    runtime_secrets["another-tenant", "THEIR_KEY"] = "sk-theirs"
    call = langflow_call(fake_langflow, api_key_ref="THEIR_KEY")
    with pytest.raises(RuntimeFailed):
        run(get_adapter("langflow").invoke(call))
    assert fake_langflow.requests == []


def test_langflow_rejecting_the_key_is_a_502_with_the_status(fake_langflow, runtime_secrets):
    runtime_secrets[PROVIDER, "LANGFLOW_KEY"] = "sk-wrong"
    with fails_with(RuntimeFailed, "HTTP 403"):
        run(get_adapter("langflow").invoke(langflow_call(fake_langflow)))


def test_langflow_without_a_key_is_refused_by_langflow(fake_langflow):
    with fails_with(RuntimeFailed, "HTTP 403"):
        run(get_adapter("langflow").invoke(langflow_call(fake_langflow, api_key_ref="")))
    assert "x-api-key" not in fake_langflow.runs[0].headers


def test_langflow_unknown_flow_is_a_502_with_404(fake_langflow):
    with fails_with(RuntimeFailed, "HTTP 404"):
        run(get_adapter("langflow").invoke(langflow_call(fake_langflow, flow="nope-agent")))


# --- Langflow: faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("500", "HTTP 500"),
        ("error_event", "HTTP 500"),
        ("garbage", "not JSON"),
        ("close_mid_stream", "connection failed"),
        ("redirect", "HTTP 302.*redirects are not followed"),
    ],
)
def test_langflow_invoke_faults_are_runtime_failures(fake_langflow, fault, message):
    fake_langflow.set_fault(fault)
    call = langflow_call(fake_langflow)
    outcome, elapsed = timed(get_adapter("langflow").invoke(call))

    assert isinstance(outcome, RuntimeFailed)
    assert outcome.status == 502
    assert re.search(message, outcome.detail), outcome.detail
    assert elapsed < call.target.timeout_seconds  # failed at once, not by timing out
    assert len(fake_langflow.runs) == 1, "a request that reached the upstream is never retried"
    assert fake_langflow.requests_to("/elsewhere") == []


@pytest.mark.parametrize(
    ("fault", "message", "delivered"),
    [
        ("error_event", "error during the run", ["echo:"]),
        ("close_mid_stream", "connection failed", ["echo:"]),
        ("no_end", "before its end event", ["echo:", " What", " is"]),
        ("garbage", "not JSON", []),
        ("500", "HTTP 500", []),
        ("redirect", "HTTP 302", []),
    ],
)
def test_langflow_stream_faults_are_runtime_failures(fake_langflow, fault, message, delivered):
    fake_langflow.set_fault(fault)
    pieces, error = run(
        collect_until_error(get_adapter("langflow").stream(langflow_call(fake_langflow)))
    )

    assert isinstance(error, RuntimeFailed), error
    assert message in error.detail
    assert pieces[: len(delivered)] == delivered


def test_slow_langflow_times_out_at_the_agents_timeout(fake_langflow):
    fake_langflow.set_fault("slow")
    outcome, elapsed = timed(
        get_adapter("langflow").invoke(langflow_call(fake_langflow, timeout=0.5))
    )

    assert isinstance(outcome, RuntimeTimedOut)
    assert outcome.status == 504
    assert elapsed < SLOWER_THAN_ANY_TIMEOUT  # gave up by its own timeout


def test_slow_langflow_stream_times_out_before_the_first_byte(fake_langflow):
    fake_langflow.set_fault("slow")
    call = langflow_call(fake_langflow, timeout=0.5)
    (pieces, error), elapsed = timed(collect_until_error(get_adapter("langflow").stream(call)))

    assert isinstance(error, RuntimeTimedOut)
    assert pieces == []
    assert elapsed < SLOWER_THAN_ANY_TIMEOUT  # gave up by its own timeout


def test_langflow_stalling_mid_stream_times_out_after_delivering_what_came(fake_langflow):
    fake_langflow.set_fault("stall_mid_stream")
    call = langflow_call(fake_langflow, timeout=0.5)
    (pieces, error), elapsed = timed(collect_until_error(get_adapter("langflow").stream(call)))

    assert isinstance(error, RuntimeTimedOut)
    assert pieces == ["echo:"]
    assert elapsed < SLOWER_THAN_ANY_TIMEOUT  # gave up by its own timeout


def test_nothing_but_runtime_errors_escape_an_adapter(fake_langflow, monkeypatch):
    def broken(*args: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(langflow, "parse_result", broken)
    with fails_with(RuntimeFailed, "failed unexpectedly"):
        run(get_adapter("langflow").invoke(langflow_call(fake_langflow)))


# --- OpenAI-compatible ------------------------------------------------------------------------


def test_openai_invoke_sends_the_configuration_and_reads_usage(fake_openai):
    call = openai_call(fake_openai, system_prompt="You are terse.", temperature=0.3, max_tokens=50)
    result = run(get_adapter("openai").invoke(call))

    assert result.output == "echo: hello there"
    assert result.usage == Usage(5, 3)  # the fake counts words
    [request] = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-fake-openai-key"
    assert request.json == {
        "model": "gpt-fake",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there"},
        ],
        "stream": False,
        "temperature": 0.3,
        "max_tokens": 50,
    }


def test_openai_forwards_the_conversation_and_the_system_prompt_overrides_the_callers(
    fake_openai,
):
    conversation = (
        ChatMessage("system", "caller's own system prompt"),
        ChatMessage("user", "first"),
        ChatMessage("assistant", "reply"),
        ChatMessage("user", "second"),
    )
    run(
        get_adapter("openai").invoke(openai_call(fake_openai, text="second", messages=conversation))
    )
    run(
        get_adapter("openai").invoke(
            openai_call(fake_openai, text="second", messages=conversation, system_prompt="Ours.")
        )
    )

    kept, overridden = (r.json["messages"] for r in fake_openai.requests)
    assert [m["content"] for m in kept] == [
        "caller's own system prompt",
        "first",
        "reply",
        "second",
    ]
    assert [m["content"] for m in overridden] == ["Ours.", "first", "reply", "second"]
    assert "temperature" not in fake_openai.requests[0].json


def test_openai_without_api_key_ref_sends_no_authorization(monkeypatch):
    with FakeOpenAIUpstream(api_key=None) as fake:
        result = run(get_adapter("openai").invoke(openai_call(fake, api_key_ref="")))
    assert result.output == "echo: hello there"
    assert "authorization" not in fake.requests[0].headers


def test_openai_missing_usage_is_estimated(fake_openai):
    fake_openai.report_usage = False
    call = openai_call(fake_openai)
    result = run(get_adapter("openai").invoke(call))
    assert result.usage == Usage(estimate("hello there"), estimate(result.output), estimated=True)


def test_openai_stream_yields_deltas_and_reads_usage_from_the_last_chunk(fake_openai):
    pieces, result = run(collect(get_adapter("openai").stream(openai_call(fake_openai))))

    assert pieces == ["echo:", " hello", " there"]
    assert result.output == "echo: hello there"
    assert result.usage == Usage(2, 3)
    body = fake_openai.requests[0].json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_openai_stream_without_usage_is_estimated(fake_openai):
    fake_openai.report_usage = False
    _, result = run(collect(get_adapter("openai").stream(openai_call(fake_openai))))
    assert result.usage.estimated
    assert result.usage.tokens_output == estimate("echo: hello there")


def test_openai_wrong_key_is_a_502_with_401(fake_openai, runtime_secrets):
    runtime_secrets[PROVIDER, "OPENAI_KEY"] = "sk-wrong"
    with fails_with(RuntimeFailed, "HTTP 401"):
        run(get_adapter("openai").invoke(openai_call(fake_openai)))


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("500", "HTTP 500"),
        ("garbage", "not JSON"),
        ("bad_shape", "without choices"),
        ("error_event", "reported an error"),
        ("redirect", "HTTP 302"),
    ],
)
def test_openai_invoke_faults_are_runtime_failures(fake_openai, fault, message):
    fake_openai.set_fault(fault)
    with fails_with(RuntimeFailed, message):
        run(get_adapter("openai").invoke(openai_call(fake_openai)))
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize(
    ("fault", "message", "delivered"),
    [
        ("error_event", "reported an error", ["echo:"]),
        ("close_mid_stream", "connection failed", ["echo:"]),
        ("no_done", "before finishing", ["echo:", " hello", " there"]),
        ("garbage", "not JSON", []),
        ("500", "HTTP 500", []),
    ],
)
def test_openai_stream_faults_are_runtime_failures(fake_openai, fault, message, delivered):
    fake_openai.set_fault(fault)
    pieces, error = run(collect_until_error(get_adapter("openai").stream(openai_call(fake_openai))))

    assert isinstance(error, RuntimeFailed), error
    assert message in error.detail
    assert pieces == delivered


@pytest.mark.parametrize("fault", ["slow", "stall_mid_stream"])
def test_slow_openai_upstream_times_out(fake_openai, fault):
    fake_openai.set_fault(fault)
    call = openai_call(fake_openai, timeout=0.5)
    (_, error), elapsed = timed(collect_until_error(get_adapter("openai").stream(call)))
    assert isinstance(error, RuntimeTimedOut)
    assert elapsed < SLOWER_THAN_ANY_TIMEOUT  # gave up by its own timeout

    if fault == "slow":  # a stall mid-stream only exists in streamed answers
        outcome, elapsed = timed(get_adapter("openai").invoke(call))
        assert isinstance(outcome, RuntimeTimedOut)
        assert elapsed < SLOWER_THAN_ANY_TIMEOUT  # gave up by its own timeout


# --- Plain HTTP ---------------------------------------------------------------------------------


def test_http_invoke_posts_the_contract_body_and_reads_usage(fake_openai):
    call = http_call(fake_openai, variables={"tier": "gold"}, system_prompt="not sent")
    result = run(get_adapter("http").invoke(call))

    assert result == RuntimeResult("echo: ping pong", Usage(2, 3), "sess-3")
    [request] = fake_openai.requests
    assert request.path == "/run"
    assert request.headers["authorization"] == "Bearer sk-fake-openai-key"
    assert request.json == {
        "input": "ping pong",
        "session_id": "sess-3",
        "variables": {"tier": "gold"},
    }


def test_http_without_usage_is_estimated_and_streams_once(fake_openai):
    fake_openai.report_usage = False
    pieces, result = run(collect(get_adapter("http").stream(http_call(fake_openai))))

    assert pieces == ["echo: ping pong"]
    assert result.usage == Usage(estimate("ping pong"), estimate("echo: ping pong"), estimated=True)


@pytest.mark.parametrize(
    ("fault", "message"), [("bad_shape", "must answer"), ("garbage", "not JSON")]
)
def test_http_answers_of_the_wrong_shape_are_runtime_failures(fake_openai, fault, message):
    fake_openai.set_fault(fault)
    with fails_with(RuntimeFailed, message):
        run(get_adapter("http").invoke(http_call(fake_openai)))


def test_http_usage_must_be_an_object():
    with fails_with(RuntimeFailed, "usage"):
        parse_answer({"output": "y", "usage": [1, 2]}, echo_call("x"))


def http_answer_with(tokens_input) -> RuntimeResult:
    usage = {"tokens_input": tokens_input, "tokens_output": 1}
    return parse_answer({"output": "y", "usage": usage}, echo_call("x"))


@pytest.mark.parametrize(
    ("reported", "counted"),
    [(-5, 0), (7, 7), (12.0, 12), (12.6, 13), (-0.5, 0), ("40", 40), (" 7 ", 7), ("-3", 0)],
)
def test_a_reported_token_count_is_made_usable(reported, counted):
    assert http_answer_with(reported).usage == Usage(counted, 1)


@pytest.mark.parametrize(
    "reported", [None, True, False, "many", "1e3", "", float("nan"), float("inf"), [1], {}]
)
def test_what_is_no_token_count_is_estimated(reported):
    usage = http_answer_with(reported).usage

    assert usage == Usage(estimate("x"), 1, estimated=True)


def test_token_counts_past_the_ceiling_are_a_logged_runtime_failure(settings, caplog):
    settings.GATEWAY_MAX_TOKENS_PER_CALL = 1000

    assert http_answer_with(999).usage == Usage(999, 1)  # at the ceiling
    with fails_with(RuntimeFailed, "more tokens"):
        http_answer_with(1000)
    assert "over the ceiling of 1000" in caplog.text


def test_the_default_ceiling_refuses_what_no_call_uses():
    with fails_with(RuntimeFailed, "more tokens"):
        http_answer_with(2**40)


# --- Timeouts, retries, redirects --------------------------------------------------------------


def test_timeouts_come_from_the_agent():
    whole = http_client.timeout_for(60)
    assert (whole.total, whole.sock_connect, whole.sock_read) == (60, 5, None)
    streamed = http_client.timeout_for(60, stream=True)
    # A stream has no total, but may not go silent longer than the agent's timeout.
    assert (streamed.total, streamed.sock_connect, streamed.sock_read) == (None, 5, 60)
    assert http_client.timeout_for(2).sock_connect == 2


def test_one_pooled_client_per_event_loop():
    async def grab() -> Any:
        first, second = http_client.get_client(), http_client.get_client()
        assert first is second
        assert first.trust_env is False
        assert isinstance(first.cookie_jar, aiohttp.DummyCookieJar)
        assert first.connector.limit == http_client.MAX_CONNECTIONS
        assert isinstance(first.connector._resolver, http_client.GuardedResolver)
        return first

    one, two = run(grab()), run(grab())
    assert one is not two
    assert one.closed
    assert two.closed


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port where connections are refused for the whole test (bound, never
    listening: no other process can start listening there meanwhile)."""
    with bound_socket() as sock:
        yield sock.getsockname()[1]


@pytest.fixture
def connect_attempts(monkeypatch):
    """Record each TCP connect attempt (its first address); ``fail_first`` refuses the first.

    Only loopback is really connected to: tests may not leave the machine, so any other
    address fails at once as unreachable.
    """
    real = aiohappyeyeballs.start_connection
    attempts: list[str] = []
    state = {"fail_first": False}

    async def recording(addr_infos, *args, **kwargs):
        address = addr_infos[0][4][0]
        attempts.append(address)
        if state["fail_first"] and len(attempts) == 1:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")
        if not ipaddress.ip_address(address).is_loopback:
            raise OSError(errno.ENETUNREACH, "tests may not leave loopback")
        return await real(addr_infos, *args, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", recording)
    return attempts, state


def test_a_connect_error_is_retried_once(fake_langflow, connect_attempts):
    attempts, state = connect_attempts
    state["fail_first"] = True
    result = run(get_adapter("langflow").invoke(langflow_call(fake_langflow)))

    assert result.output == ANSWER
    assert len(attempts) == 2
    assert len(fake_langflow.runs) == 1


def test_connections_are_kept_alive_between_calls(fake_langflow, connect_attempts):
    attempts, _ = connect_attempts

    async def three_calls() -> None:
        for _ in range(3):
            await get_adapter("langflow").invoke(langflow_call(fake_langflow))
        pieces, _ = await collect(get_adapter("langflow").stream(langflow_call(fake_langflow)))
        assert pieces

    run(three_calls())
    assert len(attempts) == 1
    assert len(fake_langflow.runs) == 4


def test_an_unreachable_runtime_fails_after_one_retry(connect_attempts, refusing_port):
    attempts, _ = connect_attempts
    target = RuntimeTarget(
        agent_id="dead",
        name="Dead",
        runtime_type="http",
        endpoint=f"http://127.0.0.1:{refusing_port}/run",
        timeout_seconds=WAIT_SECONDS,
    )
    call = RuntimeCall(target=target, request_id="r", input="x", session_id="s")
    outcome, elapsed = timed(get_adapter("http").invoke(call))

    assert isinstance(outcome, RuntimeFailed)
    assert "unreachable" in outcome.detail
    assert len(attempts) == 2
    assert elapsed < WAIT_SECONDS  # refused: it did not wait for the timeout


# --- Private-network guard ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),  # noqa: S104 — an address to classify, not to bind
        ("224.0.0.251", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("ff02::1", False),
    ],
)
def test_only_global_unicast_addresses_are_public(address, public):
    assert http_client.is_public_ip(address) is public


@pytest.fixture
def resolver(monkeypatch):
    """Point host names at chosen addresses; ``calls`` counts lookups."""
    table: dict[str, list[str]] = {}
    calls: list[str] = []

    async def fake_getaddrinfo(host: str, port: int) -> list[tuple[Any, ...]]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in table[host]
        ]

    monkeypatch.setattr(http_client, "_getaddrinfo", fake_getaddrinfo)
    return table, calls


@pytest.fixture
def guard_on(settings):
    settings.RUNTIME_ALLOW_PRIVATE_NETWORKS = False


def test_the_guard_refuses_a_loopback_endpoint(fake_langflow, guard_on):
    with fails_with(RuntimeFailed, r"non-public.*RUNTIME_ALLOW_PRIVATE_NETWORKS"):
        run(get_adapter("langflow").invoke(langflow_call(fake_langflow)))
    assert fake_langflow.requests == []


def test_the_guard_refuses_localhost_without_asking_dns(fake_langflow, guard_on, resolver):
    _, calls = resolver
    call = langflow_call(fake_langflow, endpoint=f"http://localhost:{fake_langflow.port}")
    with fails_with(RuntimeFailed, "non-public"):
        run(get_adapter("langflow").invoke(call))
    assert calls == []


def test_the_guard_refuses_a_name_resolving_to_loopback(fake_langflow, guard_on, resolver):
    table, _ = resolver
    table["agents.example.com"] = ["127.0.0.1"]
    call = langflow_call(fake_langflow, endpoint=f"http://agents.example.com:{fake_langflow.port}")
    with fails_with(RuntimeFailed, r"agents.example.com.*\(127.0.0.1\)"):
        run(get_adapter("langflow").invoke(call))
    assert fake_langflow.requests == []


def test_the_guard_refuses_a_name_if_any_address_is_private(guard_on, resolver):
    table, _ = resolver
    table["mixed.example.com"] = ["8.8.8.8", "10.0.0.7"]
    with fails_with(RuntimeFailed, r"10\.0\.0\.7"):
        run(http_client.resolve_public("mixed.example.com", 443))


def test_an_unresolvable_host_is_a_runtime_failure(guard_on, resolver):
    with fails_with(RuntimeFailed, "cannot resolve"):
        run(http_client.resolve_public("nowhere.invalid", 443))


def test_resolutions_are_cached(guard_on, resolver, monkeypatch):
    table, calls = resolver
    table["api.example.com"] = ["8.8.4.4"]

    async def twice() -> None:
        await http_client.resolve_public("api.example.com", 443)
        await http_client.resolve_public("api.example.com", 443)

    run(twice())
    assert calls == ["api.example.com"]
    monkeypatch.setattr(http_client, "DNS_CACHE_SECONDS", 0)
    http_client._dns_cache.clear()
    run(twice())
    assert calls == ["api.example.com"] * 3


def test_the_connection_goes_to_the_checked_address(guard_on, resolver, connect_attempts):
    """Checked once, connected to that very address: a DNS rebind has no second lookup to win."""
    table, calls = resolver
    table["api.example.com"] = ["93.184.216.34"]
    attempts, _ = connect_attempts
    call = RuntimeCall(
        target=RuntimeTarget(
            agent_id="a",
            name="A",
            runtime_type="http",
            endpoint="http://api.example.com/run",
            timeout_seconds=2,
        ),
        request_id="r",
        input="x",
        session_id="s",
    )
    with fails_with(RuntimeFailed, "unreachable"):  # tests may not leave loopback
        run(get_adapter("http").invoke(call))
    assert set(attempts) == {"93.184.216.34"}
    assert calls == ["api.example.com"]


def test_the_resolver_returns_only_checked_addresses(guard_on, resolver):
    table, _ = resolver
    table["api.example.com"] = ["93.184.216.34", "2606:2800:220:1::1"]
    table["rebind.example.com"] = ["127.0.0.1"]

    async def resolve(host: str, port: int) -> Any:
        guarded = http_client.GuardedResolver()  # made on the loop, as the connector does
        try:
            return await guarded.resolve(host, port)
        finally:
            await guarded.close()

    answers = run(resolve("api.example.com", 443))
    assert [(a["host"], a["port"], a["hostname"]) for a in answers] == [
        ("93.184.216.34", 443, "api.example.com"),
        ("2606:2800:220:1::1", 443, "api.example.com"),
    ]
    with fails_with(RuntimeFailed, "non-public"):
        run(resolve("rebind.example.com", 80))


def test_the_connector_itself_checks_addresses_at_connect_time(
    guard_on, resolver, connect_attempts
):
    """Even a request that skips the pre-check cannot connect to a non-public address."""
    table, _ = resolver
    table["rebind.example.com"] = ["8.8.8.8", "127.0.0.1"]
    attempts, _ = connect_attempts

    async def post_directly() -> None:
        await http_client.get_client().post("http://rebind.example.com/run", data=b"{}")

    with fails_with(RuntimeFailed, r"rebind.example.com.*\(127.0.0.1\)"):
        run(post_directly())
    assert attempts == []


# --- A client that leaves early ------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["langflow", "openai"])
def test_closing_a_stream_early_releases_the_upstream_at_once(fake_langflow, fake_openai, runtime):
    fake = fake_langflow if runtime == "langflow" else fake_openai
    fake.set_fault("stall_mid_stream")
    call = langflow_call(fake_langflow) if runtime == "langflow" else openai_call(fake_openai)

    async def first_piece_then_leave() -> str:
        async with aclosing(get_adapter(runtime).stream(call)) as items:
            async for item in items:
                return item
        raise AssertionError("no piece")

    piece, elapsed = timed(first_piece_then_leave())
    assert piece == "echo:"
    assert elapsed < fake.slow_seconds  # not held until the stalled upstream went on


@pytest.mark.parametrize(
    "endpoint", ["ftp://example.com/run", "http://127.0.0.1:99999/run", "not a url", "http:///run"]
)
def test_a_broken_endpoint_is_a_runtime_failure(endpoint):
    target = RuntimeTarget(agent_id="b", name="B", runtime_type="http", endpoint=endpoint)
    call = RuntimeCall(target=target, request_id="r", input="x", session_id="s")
    with fails_with(RuntimeFailed, "is refused"):
        run(get_adapter("http").invoke(call))


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://2130706433/run",
        "http://0x7f.1/run",
        "http://[::ffff:7f00:1]/run",
        "http://[2002:a9fe:a9fe::1]/run",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://api.example.com:0/run",
    ],
)
def test_the_gateway_refuses_at_call_time_what_registration_refuses(guard_on, resolver, endpoint):
    """One rule set (core/netaddr.py): an endpoint stored before the rules tightened, or
    written to the database by hand, is refused before any lookup or connection."""
    _, lookups = resolver
    with pytest.raises(ValidationFailed) as refused_at_registration:
        validate_endpoint(endpoint)
    target = RuntimeTarget(agent_id="a", name="A", runtime_type="http", endpoint=endpoint)
    call = RuntimeCall(target=target, request_id="r", input="x", session_id="s")

    [reason] = refused_at_registration.value.details["runtime"]["endpoint"]
    with fails_with(RuntimeFailed, re.escape(reason)):
        run(get_adapter("http").invoke(call))
    assert lookups == []
