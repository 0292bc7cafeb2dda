from auditlog.registry import auditlog

from agent_registry.tenants.models import (
    AgentProject,
    AgentTenant,
    TenantInvitation,
    TenantMembership,
)

auditlog.register(AgentTenant)
auditlog.register(AgentProject)
auditlog.register(TenantMembership)
auditlog.register(TenantInvitation)
