from auditlog.registry import auditlog

from agent_registry.agents.models import AgentInstance, AgentPlan

auditlog.register(AgentInstance)
auditlog.register(AgentPlan)
