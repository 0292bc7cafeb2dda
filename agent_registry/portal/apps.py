from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer and provider portal: server-rendered pages over the same services
    and selectors as the API (docs/portal.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "agent_registry.portal"
    label = "portal"
    verbose_name = "Portal"
