from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "agent_registry.access"
    label = "access"

    def ready(self) -> None:
        from agent_registry.access import audit  # noqa: F401  (registers models for the audit log)
