from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "agent_registry.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from agent_registry.core import checks  # noqa: F401  (registers system checks)
