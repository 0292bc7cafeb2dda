from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agent_registry.agents"
    label = "agents"

    def ready(self) -> None:
        from agent_registry.agents import audit  # noqa: F401  (registers models for the audit log)
        from agent_registry.agents.metrics import register_collector
        from agent_registry.agents.selectors import secret_references
        from agent_registry.secrets.selectors import register_reference_source

        # The secrets app (a lower layer) asks which agents use a secret through this.
        register_reference_source(secret_references)
        register_collector()  # agents by state, at /metrics
