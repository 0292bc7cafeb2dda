"""What a first user of `make run` relies on: the port, the docs offline, the demo keys."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from agent_registry.demo.management.commands import seed_demo

REPO = Path(__file__).resolve().parents[2]

PRINT_PUBLIC_URLS = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'agent_registry.settings'; "
    "django.setup(); from django.conf import settings; "
    "print(settings.PUBLIC_BASE_URL, settings.WIDGET_BASE_URL)"
)


def _environment_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_the_public_url_follows_the_port_make_run_serves_on():
    # Given make's PORT, when a command of `make run` reads the settings (the probe
    # target runs like the run target's commands do, with make's exported variables)
    probe = f'probe:\n\t@{sys.executable} -c "{PRINT_PUBLIC_URLS}"\n'
    environment = _environment_without("PORT", "PUBLIC_BASE_URL", "WIDGET_BASE_URL", "MAKEFLAGS")

    def urls(*arguments: str) -> str:
        return subprocess.run(
            [
                shutil.which("make") or "/usr/bin/make",
                "-s",
                "--no-print-directory",
                "-f",
                "Makefile",
                "-f",
                "-",
                "probe",
                *arguments,
            ],
            input=probe,
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()

    # then the embed snippets' base URL names that port, and 8000 by default
    assert urls("PORT=9000") == "http://127.0.0.1:9000 http://127.0.0.1:9000/widget"
    assert urls() == "http://127.0.0.1:8000 http://127.0.0.1:8000/widget"


def test_an_explicit_public_url_wins_over_the_port():
    environment = _environment_without("WIDGET_BASE_URL") | {
        "PORT": "9000",
        "PUBLIC_BASE_URL": "https://agents.example.com/",
    }

    printed = subprocess.run(
        [sys.executable, "-c", PRINT_PUBLIC_URLS],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()

    assert printed == "https://agents.example.com https://agents.example.com/widget"


@pytest.mark.django_db
def test_the_demo_credentials_load_into_a_shell(tmp_path, monkeypatch):
    # Given a freshly seeded demo
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo-credentials.txt")
    monkeypatch.setattr(seed_demo, "SHELL_FILE", tmp_path / "demo.env")
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    saved = dict(
        line.split("=", 1) for line in (tmp_path / "demo-credentials.txt").read_text().splitlines()
    )

    # when a shell sources var/demo.env, as the README shows
    loaded = subprocess.run(
        [
            shutil.which("sh") or "/bin/sh",
            "-c",
            '. "$1" && printf "%s\\n" "$DEMO_API_KEY" "$OPERATOR_TOKEN" "$ADMIN_PASSWORD"',
            "sh",
            str(tmp_path / "demo.env"),
        ],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()

    # then it has the same secrets, and the file is the owner's alone
    assert loaded == [saved["DEMO_API_KEY"], saved["OPERATOR_TOKEN"], saved["ADMIN_PASSWORD"]]
    assert oct((tmp_path / "demo.env").stat().st_mode & 0o777) == "0o600"


@pytest.mark.django_db
def test_a_demo_seeded_before_demo_env_existed_gets_it(tmp_path, monkeypatch):
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo-credentials.txt")
    monkeypatch.setattr(seed_demo, "SHELL_FILE", tmp_path / "demo.env")
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    (tmp_path / "demo.env").unlink()

    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert "export DEMO_API_KEY=agr_" in (tmp_path / "demo.env").read_text()


LOCAL_ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.django_db
def test_the_api_docs_load_only_local_assets_that_are_served(settings, tmp_path):
    # Given the static files collected as `make run` does (whitenoise serves them)
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    client = Client()

    # when the docs page is loaded
    page = client.get("/api/docs/")

    # then it names no other host (no CDN, no validator badge) …
    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "an outside URL"
    assets = LOCAL_ASSET.findall(html)
    assert {asset.rsplit(".", 1)[-1] for asset in assets} == {"png", "css", "js"}
    # … and every asset it loads is served from here
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/swagger-ui-dist/")
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content), asset
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
