from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "agent_registry.tenants"
    label = "tenants"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_save

        from agent_registry.tenants import audit  # noqa: F401  (registers models for the audit log)
        from agent_registry.tenants.receivers import accept_invitations_of_new_user

        post_save.connect(
            accept_invitations_of_new_user,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="tenants.accept_invitations_of_new_user",
        )
