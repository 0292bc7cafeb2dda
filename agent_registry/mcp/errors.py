"""The proxy's own refusals; everything else is the gateway's family (gateway/errors.py)."""

from __future__ import annotations

from agent_registry.gateway.errors import GatewayError


class SessionNotFound(GatewayError):
    """The ``Mcp-Session-Id`` was not issued to this key for this agent, or the server
    ended the session: as the protocol says, the client initializes a new one."""

    code = "session_not_found"
    status = 404
    default_message = "No such MCP session for this key; initialize a new one."


class BadMcpMessage(GatewayError):
    code = "validation_error"
    status = 400
    default_message = "The body is not a JSON-RPC 2.0 message of MCP."
