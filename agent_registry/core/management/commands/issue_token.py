"""``manage.py issue_token USERNAME [--staff]``: print a new operator API token on one line."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agent_registry.core import keys
from agent_registry.core.identifiers import user_get_or_create
from agent_registry.core.models import OperatorToken


class Command(BaseCommand):
    help = "Create the user if needed and print a new API token for it (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--staff",
            action="store_true",
            help="Make the user an operator (staff): full API access.",
        )
        parser.add_argument("--name", default="", help="A label for the token.")

    @transaction.atomic
    def handle(self, *args, username: str, staff: bool, name: str, **options):
        if not username or len(username) > 150:
            raise CommandError("USERNAME must be 1 to 150 characters.")
        try:
            user, _ = user_get_or_create(username)
        except ValidationError as error:
            raise CommandError(f"USERNAME: {' '.join(error.messages)}") from None
        if staff and not user.is_staff:
            user.is_staff = True
        user.save()
        issued = keys.issue_key(keys.OPERATOR_TOKEN_KIND)
        OperatorToken.objects.create(
            user=user, name=name, token_prefix=issued.prefix, token_hash=issued.hash
        )
        self.stdout.write(issued.plaintext)
