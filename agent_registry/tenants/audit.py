from auditlog.registry import auditlog

from agent_registry.tenants.models import AgentProject, AgentTenant, TenantMembership

auditlog.register(AgentTenant)
auditlog.register(AgentProject)
auditlog.register(TenantMembership)
