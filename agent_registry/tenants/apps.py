from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "agent_registry.tenants"
    label = "tenants"

    def ready(self) -> None:
        from agent_registry.tenants import audit  # noqa: F401  (registers models for the audit log)
