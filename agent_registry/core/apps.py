from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "agent_registry.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from agent_registry.core import checks  # noqa: F401  (registers system checks)
        from agent_registry.core.sqlite import register_collations

        connection_created.connect(register_collations, dispatch_uid="core.sqlite_collations")
