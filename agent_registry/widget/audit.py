from auditlog.registry import auditlog

from agent_registry.widget.models import WidgetKey

# Widget keys are publishable (not secrets): who made or revoked which key is kept.
auditlog.register(WidgetKey, exclude_fields=["updated_at", "last_session_at"])
