"""Reactions of the tenants app to other apps' events (connected in apps.py)."""

from __future__ import annotations

from typing import Any


def accept_invitations_of_new_user(
    sender: Any, instance: Any, created: bool, **kwargs: Any
) -> None:
    """Whatever path created the account (first OIDC login, issue_token, the admin),
    the roles granted to its name before it existed become memberships."""
    if created and not kwargs.get("raw"):
        from agent_registry.tenants.services import invitations_accept

        invitations_accept(user=instance)  # in the creating transaction: all or nothing
