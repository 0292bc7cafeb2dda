from django.apps import AppConfig


class McpConfig(AppConfig):
    """MCP servers sold as agents: the deploy check and the proxy at /mcp/agents/<id>."""

    name = "agent_registry.mcp"
    label = "mcp_agents"  # "mcp" reads like the SDK's package in logs and migrations

    def ready(self) -> None:
        from agent_registry.agents import deploy_checks
        from agent_registry.agents.models import RuntimeType
        from agent_registry.mcp.probe import deploy_check

        # Deploying an ``mcp`` agent connects to its server and records its tools.
        deploy_checks.register(RuntimeType.MCP, deploy_check)
