from auditlog.registry import auditlog

from agent_registry.secrets.models import EnvironmentSecretGrant, RuntimeSecret

# The value's ciphertext never enters the audit trail; ``version`` records that it changed.
auditlog.register(RuntimeSecret, exclude_fields=["ciphertext", "updated_at"])
auditlog.register(EnvironmentSecretGrant, exclude_fields=["updated_at"])
