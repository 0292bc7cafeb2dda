from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed


class BillingConfig(AppConfig):
    name = "agent_registry.billing"
    label = "billing"

    def ready(self) -> None:
        from agent_registry.billing import channels

        checks.register(channels.check_channel)
        setting_changed.connect(channels.settings_changed, dispatch_uid="billing.channels")
