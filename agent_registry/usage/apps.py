from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "agent_registry.usage"
    label = "usage"
