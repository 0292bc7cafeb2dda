"""Runtime secrets: the credentials the gateway sends to an agent's runtime.

A ``RuntimeSecret`` belongs to one tenant (the provider whose agents use it); its value
is stored only as a Fernet token (``secrets/crypto.py``) and is never read back through
any door. An ``EnvironmentSecretGrant`` lets one tenant's agents use an operator-provided
environment secret (``RUNTIME_SECRET_<NAME>``); without a grant they cannot.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from agent_registry.core.models import PublicIdModel
from agent_registry.tenants.models import AgentTenant

# \Z, not $: "$" would also accept a name followed by a newline.
SECRET_NAME_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}\Z"
SECRET_NAME_HELP = "A-Z, 0-9 and _, starting with a letter, at most 64 characters."
ENV_PREFIX = "RUNTIME_SECRET_"

secret_name_validator = RegexValidator(SECRET_NAME_PATTERN, SECRET_NAME_HELP)


class RuntimeSecret(PublicIdModel):
    tenant = models.ForeignKey(
        AgentTenant, on_delete=models.CASCADE, related_name="runtime_secrets"
    )
    name = models.CharField(max_length=64, validators=[secret_name_validator])
    # A Fernet token of the value (bound to tenant and name, see crypto.py). Excluded from
    # the audit trail; no form, serializer or admin page shows it.
    ciphertext = models.TextField(editable=False)
    # Counts value replacements, so the audit trail records that the value changed
    # without recording the value.
    version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="runtime_secret_unique_name")
        ]
        verbose_name = "runtime secret"

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant_id})"


class EnvironmentSecretGrant(PublicIdModel):
    """Tenant T's agents may use the environment secret ``RUNTIME_SECRET_<name>``."""

    tenant = models.ForeignKey(
        AgentTenant, on_delete=models.CASCADE, related_name="environment_secret_grants"
    )
    name = models.CharField(max_length=64, validators=[secret_name_validator])
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="environment_secret_grant_unique_name"
            )
        ]
        verbose_name = "environment secret grant"

    def __str__(self) -> str:
        return f"{ENV_PREFIX}{self.name} → {self.tenant_id}"

    @property
    def variable(self) -> str:
        return f"{ENV_PREFIX}{self.name}"
