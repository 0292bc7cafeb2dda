"""ASGI entry point: ``uvicorn agent_registry.asgi:application``.

The gateway's hot paths are served by a plain ASGI app; everything else by Django.
At startup (the ASGI lifespan) the in-process jobs start here when ``IN_PROCESS_JOBS``
is on: this module composes the apps, so the gateway need not know about the jobs.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_registry.settings")

django_application = get_asgi_application()

# Imported once Django is set up.
from agent_registry.core.asgi_body import (  # noqa: E402
    BoundedRequestBody,
    Message,
    Receive,
    Scope,
    Send,
)
from agent_registry.core.metrics import worker_started  # noqa: E402
from agent_registry.core.scheduler import start_in_process_jobs  # noqa: E402
from agent_registry.gateway.app import GatewayApp  # noqa: E402

# --- MCP servers as agents (issue 15, part 2): only /mcp/agents/<agent_id> -----------
from agent_registry.mcp import proxy as mcp_proxy  # noqa: E402

mcp_proxy_application = mcp_proxy.McpProxyApp()
# --- end MCP servers as agents ---------------------------------------------------------

# Bodies bound for Django are bounded and chunked ones read (core/asgi_body.py).
gateway_application = GatewayApp(BoundedRequestBody(django_application))

# --- mcp_server: exactly /mcp and /mcp/, the registry as an MCP server (issue 15, part 1).
# Other /mcp/... paths are not its own. It stops its sessions at lifespan shutdown.
from agent_registry.mcp_server.app import mcp_server_application  # noqa: E402

# --- end mcp_server


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        receive = _starting_jobs(receive)
        receive = mcp_server_application.following_lifespan(receive)  # mcp_server
    if mcp_server_application.serves(scope):  # mcp_server: exactly /mcp
        await mcp_server_application(scope, receive, send)
        return
    if mcp_proxy.handles(scope):  # MCP servers as agents: /mcp/agents/… prefixes only
        await mcp_proxy_application(scope, receive, send)
        return
    await gateway_application(scope, receive, send)


def _starting_jobs(receive: Receive) -> Receive:
    """``receive`` that starts the in-process jobs when the server starts up; the
    gateway answers the lifespan messages (and closes its clients at shutdown)."""

    async def receive_and_start() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # ops-monitor: tidy the metrics files of workers gone (multiprocess mode).
            worker_started()
            start_in_process_jobs()
        return message

    return receive_and_start
