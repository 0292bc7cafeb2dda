from django.apps import AppConfig


class WidgetConfig(AppConfig):
    """The embeddable chat widget: publishable keys, sessions, the script and its embed code."""

    name = "agent_registry.widget"
    label = "widget"

    def ready(self) -> None:
        from agent_registry.widget import audit  # noqa: F401  (registers models for the audit log)
