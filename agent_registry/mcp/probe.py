"""The deploy check of ``mcp`` agents: connect with the official MCP client, list tools.

Registered for the ``mcp`` runtime type (apps.py → agents/deploy_checks.py). It opens a
session with the agent's server (the agent's credential as ``Authorization: Bearer``),
pages through ``tools/list`` and returns each tool's name, description and input schema,
which deploy records on the agent and the catalog shows. A server that cannot be reached,
refuses the credential or does not speak MCP fails the deploy with 409
``runtime_check_failed`` and a reason that never contains the credential.

The SDK's HTTP client (httpx2) connects through ``GuardedBackend``: with the
private-network guard on, it connects only to addresses the gateway's own resolver
(gateway/http_client.py ``resolve_public``) checked, so registration, deploy and calls
apply one rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
from asgiref.sync import async_to_sync
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agent_registry.agents.deploy_checks import DeployFindings
from agent_registry.agents.errors import RuntimeCheckFailed
from agent_registry.core import netaddr
from agent_registry.gateway.errors import GatewayError
from agent_registry.gateway.http_client import private_networks_allowed, resolve_public
from agent_registry.secrets import cache as secret_cache
from agent_registry.secrets.errors import SecretNotFound

logger = logging.getLogger("agent_registry.mcp")

PROBE_TIMEOUT_CAP_SECONDS = 30.0
MAX_TOOLS = 500
MAX_PAGES = 20
MAX_TOOLS_JSON_BYTES = 1024 * 1024
MAX_DESCRIPTION_CHARS = 2000


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend, connecting only to checked public addresses."""

    def __init__(self) -> None:
        self._plain = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses: tuple[str, ...] = (host,)
        if not private_networks_allowed():
            addresses = await resolve_public(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._plain.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore2.ConnectError as exc:
                failure = exc
        raise failure or httpcore2.ConnectError(f"no address for {host!r}")

    async def sleep(self, seconds: float) -> None:
        await self._plain.sleep(seconds)


def _http_client(secret: str, seconds: float) -> httpx2.AsyncClient:
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    transport._pool._network_backend = GuardedBackend()
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx2.AsyncClient(
        transport=transport,
        headers=headers,
        timeout=httpx2.Timeout(seconds),
        follow_redirects=False,
        trust_env=False,
    )


async def list_tools(endpoint: str, secret: str, seconds: float) -> list[dict[str, Any]]:
    """The server's tools, through a fresh session that is ended afterwards."""
    tools: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(seconds),
        _http_client(secret, seconds) as http,
        Client(streamable_http_client(endpoint, http_client=http), mode="legacy") as client,
    ):
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                tools.append(
                    {
                        "name": tool.name,
                        "description": (tool.description or "")[:MAX_DESCRIPTION_CHARS],
                        "input_schema": dict(tool.input_schema or {}),
                    }
                )
            cursor = page.next_cursor
            if not cursor or len(tools) >= MAX_TOOLS:
                break
    return tools[:MAX_TOOLS]


def _reason(exc: BaseException, seconds: float) -> str:
    """Why the probe failed, in words that carry no credential and no upstream text
    beyond an MCP error's own message."""
    if isinstance(exc, BaseExceptionGroup):
        return _reason(exc.exceptions[0], seconds)
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return f"the server did not answer within {seconds:g} s"
    if isinstance(exc, GatewayError):  # the private-network guard, a name that won't resolve
        return "its address is refused or cannot be resolved (private networks are refused)"
    if isinstance(exc, httpx2.ConnectError | httpcore2.ConnectError | OSError):
        return "the server could not be reached (connection failed)"
    if isinstance(exc, MCPError):
        return f"the server did not answer as an MCP server ({exc.error.message[:200]})"
    return f"the server did not answer as an MCP server ({type(exc).__name__})"


def deploy_check(agent) -> DeployFindings:
    """The ``mcp`` runtime's deploy check (agents/deploy_checks.py)."""
    endpoint = agent.runtime_endpoint
    seconds = min(float(agent.timeout_seconds), PROBE_TIMEOUT_CAP_SECONDS)
    try:
        netaddr.parse_endpoint(endpoint, allow_private=private_networks_allowed())
    except netaddr.EndpointRefused as refused:
        raise RuntimeCheckFailed(
            f"The MCP server's endpoint is refused: {refused}",
            details={"runtime": {"endpoint": [str(refused)]}},
        ) from None
    secret = ""
    if agent.runtime_api_key_ref:
        try:
            secret = secret_cache.resolve(str(agent.project.tenant_id), agent.runtime_api_key_ref)
        except SecretNotFound:
            raise RuntimeCheckFailed(
                "The agent's api_key_ref names no secret its tenant can use.",
                details={"runtime": {"api_key_ref": ["No such runtime secret."]}},
            ) from None
    try:
        tools = async_to_sync(list_tools)(endpoint, secret, seconds)
    except Exception as exc:
        reason = _reason(exc, seconds)
        if len(secret) >= 4:
            reason = reason.replace(secret, "[redacted]")
        logger.warning(
            "deploy check of MCP agent %s failed: %s (%s)",
            agent.agent_id,
            reason,
            type(exc).__name__,
        )
        raise RuntimeCheckFailed(
            f"Cannot deploy '{agent.agent_id}': {reason}.",
            details={"runtime": {"endpoint": [reason]}},
        ) from None
    if len(json.dumps(tools)) > MAX_TOOLS_JSON_BYTES:
        raise RuntimeCheckFailed(
            f"Cannot deploy '{agent.agent_id}': its tool list is over {MAX_TOOLS_JSON_BYTES} bytes."
        )
    return DeployFindings(tools=tools)
