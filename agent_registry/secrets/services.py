"""Writes for runtime secrets and environment grants. Values are write-only.

Each write drops this process's cached resolution of the name once it commits.
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from agent_registry.core.errors import Conflict, NotFound, ValidationFailed
from agent_registry.secrets import cache, crypto
from agent_registry.secrets.models import (
    SECRET_NAME_HELP,
    SECRET_NAME_PATTERN,
    EnvironmentSecretGrant,
    RuntimeSecret,
)
from agent_registry.secrets.selectors import references_to
from agent_registry.tenants.models import AgentTenant

MAX_VALUE_LENGTH = 4096
_NAME = re.compile(SECRET_NAME_PATTERN)
# Printable ASCII without spaces at either end: the value travels in an HTTP header.
_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")


def secret_name_check(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationFailed(details={"name": [SECRET_NAME_HELP]})
    return name


def secret_value_check(value: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE_LENGTH:
        raise ValidationFailed(details={"value": [f"Must be 1 to {MAX_VALUE_LENGTH} characters."]})
    if not _VALUE.match(value):
        raise ValidationFailed(
            details={
                "value": [
                    "Must be printable ASCII without control characters or surrounding "
                    "spaces (it is sent in an HTTP header)."
                ]
            }
        )
    return value


def _forget_on_commit(tenant_id: str, name: str) -> None:
    transaction.on_commit(lambda: cache.forget(tenant_id, name))


@transaction.atomic
def secret_create(*, tenant: AgentTenant, name: str, value: str) -> RuntimeSecret:
    secret_name_check(name)
    secret_value_check(value)
    if RuntimeSecret.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(f"Tenant '{tenant.slug}' already has a runtime secret '{name}'.")
    try:
        with transaction.atomic():
            secret = RuntimeSecret.objects.create(
                tenant=tenant, name=name, ciphertext=crypto.encrypt(str(tenant.pk), name, value)
            )
    except IntegrityError as exc:  # created concurrently
        raise Conflict(f"Tenant '{tenant.slug}' already has a runtime secret '{name}'.") from exc
    _forget_on_commit(str(tenant.pk), name)
    return secret


@transaction.atomic
def secret_replace(*, secret: RuntimeSecret, value: str) -> RuntimeSecret:
    secret_value_check(value)
    secret = RuntimeSecret.objects.select_for_update().get(pk=secret.pk)
    secret.ciphertext = crypto.encrypt(str(secret.tenant_id), secret.name, value)
    secret.version += 1
    secret.save(update_fields=["ciphertext", "version", "updated_at"])
    _forget_on_commit(str(secret.tenant_id), secret.name)
    return secret


@transaction.atomic
def secret_delete(*, secret: RuntimeSecret) -> None:
    secret = RuntimeSecret.objects.select_for_update().get(pk=secret.pk)
    users = references_to(str(secret.tenant_id)).get(secret.name, [])
    if users:
        raise Conflict(
            f"Runtime secret '{secret.name}' is used by {', '.join(sorted(users)[:10])}; "
            "change their api_key_ref first (or replace the value instead)."
        )
    secret.delete()
    _forget_on_commit(str(secret.tenant_id), secret.name)


@transaction.atomic
def grant_create(
    *, tenant: AgentTenant, name: str, granted_by=None, note: str = ""
) -> EnvironmentSecretGrant:
    secret_name_check(name)
    if EnvironmentSecretGrant.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(f"Tenant '{tenant.slug}' already may use RUNTIME_SECRET_{name}.")
    try:
        with transaction.atomic():
            grant = EnvironmentSecretGrant.objects.create(
                tenant=tenant, name=name, granted_by=granted_by, note=note
            )
    except IntegrityError as exc:
        raise Conflict(f"Tenant '{tenant.slug}' already may use RUNTIME_SECRET_{name}.") from exc
    _forget_on_commit(str(tenant.pk), name)
    return grant


@transaction.atomic
def grant_revoke(*, grant: EnvironmentSecretGrant) -> None:
    """Operators may revoke a grant in use (an incident): those agents' calls then fail."""
    tenant_id, name = str(grant.tenant_id), grant.name
    deleted, _ = EnvironmentSecretGrant.objects.filter(pk=grant.pk).delete()
    if not deleted:
        raise NotFound("No such grant.")
    _forget_on_commit(tenant_id, name)


def secrets_reencrypt(*, batch_size: int = 500) -> int:
    """Re-encrypt every stored value under the first configured key. Returns the count.

    One short transaction per batch, each row locked while it is rewritten; values are
    never decrypted outside ``MultiFernet.rotate``. A row no key opens stops the run
    (``errors.SecretUnreadable``): drop no old key until this finishes.
    """
    rotated = 0
    last_pk = None
    while True:
        with transaction.atomic():
            rows = RuntimeSecret.objects.select_for_update().order_by("pk")
            if last_pk is not None:
                rows = rows.filter(pk__gt=last_pk)
            batch = list(rows[:batch_size])
            for secret in batch:
                secret.ciphertext = crypto.rotate(secret.ciphertext)
                secret.save(update_fields=["ciphertext"])
        if not batch:
            return rotated
        rotated += len(batch)
        last_pk = batch[-1].pk
