from django.apps import AppConfig


class SecretsConfig(AppConfig):
    name = "agent_registry.secrets"
    label = "secrets"
    verbose_name = "Runtime secrets"

    def ready(self) -> None:
        from agent_registry.secrets import (  # noqa: F401  (audit registration, system checks)
            audit,
            checks,
        )
