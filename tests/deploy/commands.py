"""Whether a container's command would start: the programs and arguments the image,
the compose file and the manifests run, checked against the code in this tree.

``python manage.py NAME ARGS`` must name a management command that exists and whose
parser accepts ARGS; ``celery -A APP SUB`` must find the Celery app and a subcommand;
``uvicorn MODULE:ATTR OPTIONS`` must import an ASGI callable and accept OPTIONS.
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys

import click
import uvicorn.main  # noqa: F401  (sys.modules["uvicorn.main"]: the package shadows it)
from celery import Celery
from celery.app.utils import find_app
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands, load_command_class


def check_command(argv: list[str], env: dict[str, str] | None = None) -> None:
    """AssertionError if ``argv`` names a program, module or option that doesn't exist.
    ``sh -c`` scripts are expanded with ``env`` (the image's ENV) as the shell would."""
    if argv[:2] == ["sh", "-c"]:
        script = re.sub(r"\$\{(\w+)\}", lambda m: (env or {})[m.group(1)], argv[2])
        words = shlex.split(script)
        assert words[0] == "exec", f"the shell must exec the server (signals): {argv[2]!r}"
        check_command(words[1:])
        return
    program = argv[0]
    if program == "python" and argv[1:2] == ["manage.py"]:
        _check_manage(argv[2:])
    elif program == "celery":
        _check_celery(argv[1:])
    elif program == "uvicorn":
        _check_uvicorn(argv[1:])
    else:
        raise AssertionError(f"unknown program in a container command: {argv}")


def _check_manage(args: list[str]) -> None:
    name, rest = args[0], args[1:]
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    parser.parse_args(rest)  # SystemExit (a test error) on an unknown option


def _check_celery(args: list[str]) -> None:
    assert args[0] in ("-A", "--app"), f"celery without -A: {args}"
    app = find_app(args[1])
    assert isinstance(app, Celery), f"-A {args[1]} is not a Celery app"
    subcommand = args[2]
    assert subcommand in celery_cli.commands, f"celery has no subcommand {subcommand!r}"


def _check_uvicorn(args: list[str]) -> None:
    command = sys.modules["uvicorn.main"].main
    assert isinstance(command, click.Command)
    context = command.make_context("uvicorn", list(args))  # UsageError on a bad option
    module_name, _, attribute = context.params["app"].partition(":")
    application = getattr(importlib.import_module(module_name), attribute)
    assert callable(application), f"{context.params['app']} is not callable"
