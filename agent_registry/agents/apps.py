from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agent_registry.agents"
    label = "agents"

    def ready(self) -> None:
        from agent_registry.agents import audit  # noqa: F401  (registers models for the audit log)
