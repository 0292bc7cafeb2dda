"""The production image (Dockerfile): multi-stage from the locked, hashed dependencies,
no compilers and no root at run time, static files collected at build, a health check
on an endpoint that answers, and a command that starts the real ASGI application.

Docker images cannot be pulled here, so the image is not built in the tests: they read
the Dockerfile and check each of its claims against the code (docs/operations.md).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.commands import check_command

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    stage, result = -1, []
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        result.append(Instruction(stage, keyword.upper(), args.strip()))
    return result


def final_stage() -> list[Instruction]:
    everything = instructions()
    last = max(i.stage for i in everything)
    return [i for i in everything if i.stage == last]


def image_env() -> dict[str, str]:
    env = {}
    for instruction in final_stage():
        if instruction.keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(instruction.args))
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec form: {args}"
    return value


def test_builds_in_two_stages_from_python_3_11_slim():
    froms = [i.args for i in instructions() if i.keyword == "FROM"]

    assert froms == ["python:3.11-slim AS builder", "python:3.11-slim"]


def test_the_builder_installs_exactly_the_hashed_lock_into_a_venv():
    builder = [i for i in instructions() if i.stage == 0]
    installs = [i.args for i in builder if i.keyword == "RUN" and "pip install" in i.args]

    assert len(installs) == 1
    assert "--require-hashes" in installs[0]
    assert "-r /tmp/requirements.lock" in installs[0]
    assert installs[0].startswith("/opt/venv/bin/pip")
    assert any(i.keyword == "COPY" and i.args.startswith("requirements.lock ") for i in builder)


def test_the_final_image_has_no_compilers_and_only_the_builders_venv():
    final = final_stage()
    runs = " ".join(i.args for i in final if i.keyword == "RUN")

    assert "apt-get" not in runs
    assert "pip install" not in runs
    assert any(
        i.keyword == "COPY" and i.args == "--from=builder /opt/venv /opt/venv" for i in final
    )


def test_runs_as_a_fixed_non_root_user():
    final = final_stage()
    users = [i.args for i in final if i.keyword == "USER"]

    assert users == ["10001:10001"]
    # Nothing after USER runs as root again, and CMD comes after it.
    keywords = [i.keyword for i in final]
    assert keywords.index("USER") < keywords.index("CMD")


def test_collects_static_files_at_build_time():
    runs = [i.args for i in final_stage() if i.keyword == "RUN"]

    assert any("python manage.py collectstatic --noinput" in run for run in runs)
    check_command(["python", "manage.py", "collectstatic", "--noinput", "--verbosity", "0"])


def test_health_check_asks_an_endpoint_that_answers(anonymous_client):
    healthcheck = next(i.args for i in final_stage() if i.keyword == "HEALTHCHECK")
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    url = re.search(r"'http://127\.0\.0\.1:%s(/[^']*)'", command[-1])

    assert url is not None, command
    assert url.group(1) == "/health/live"
    # The check's Host header is 127.0.0.1, in Django's default ALLOWED_HOSTS and in the
    # compose example's.
    assert anonymous_client.get(url.group(1), HTTP_HOST="127.0.0.1").status_code == 200


def test_the_command_starts_the_real_asgi_application_with_workers_from_the_environment():
    final = final_stage()
    command = exec_form(next(i.args for i in final if i.keyword == "CMD"))
    env = image_env()

    check_command(command, env)
    words = shlex.split(command[2])
    assert "agent_registry.asgi:application" in words
    # uvicorn takes --workers' default from WEB_CONCURRENCY: not fixed in the command.
    assert "--workers" not in words
    assert int(env["WEB_CONCURRENCY"]) >= 2
    assert env["APP_ENV"] == "production"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert {".env", ".git", ".venv", "var"} <= ignored
