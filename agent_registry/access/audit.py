from auditlog.registry import auditlog

from agent_registry.access.models import AgentAccess, AgentConfiguration

# Key hashes never enter the audit trail; prefixes are public and stay useful.
auditlog.register(AgentAccess, exclude_fields=["key_hash", "previous_key_hash", "updated_at"])
auditlog.register(AgentConfiguration, exclude_fields=["updated_at"])
