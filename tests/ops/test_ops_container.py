"""The container image and compose file, checked without Docker (which cannot run on every machine that runs
the tests): every command is a real ``caredesk`` command line, every setting it passes is one caredesk reads, the
image runs as a user, and the desk's processes start in order after the database and the migration."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from caredesk.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
SOURCE = "\n".join(p.read_text() for p in (REPO / "src" / "caredesk").rglob("*.py"))


def _compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def _caredesk_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _compose()["services"].items() if s.get("image") == "caredesk:local"}


def test_compose_starts_postgres_migrate_web_worker_and_listener() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "migrate", "web", "worker", "listener"}
    commands = {name: s["command"][:2] for name, s in _caredesk_services().items()}
    assert commands == {"migrate": ["caredesk", "migrate"], "web": ["caredesk", "serve"],
                        "worker": ["caredesk", "worker"], "listener": ["caredesk", "listen"]}
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "listener"):
        assert services[name]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                "migrate": {"condition": "service_completed_successfully"}}
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["migrate", "web", "worker", "listener"])
def test_each_command_is_a_caredesk_command_line(name: str) -> None:
    command = _caredesk_services()[name]["command"]
    args = build_parser().parse_args(command[1:])  # argparse exits (a failure here) on an unknown option
    assert callable(args.func)


def test_every_setting_passed_is_one_caredesk_reads() -> None:
    for name, service in _caredesk_services().items():
        for variable in service["environment"]:
            assert re.search(rf"[\"']{variable}[\"']", SOURCE), f"{name}: {variable} is read nowhere in caredesk"
        url = service["environment"]["DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url


def test_the_image_runs_caredesk_serve_as_a_user() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    cmd = json.loads(re.findall(r"^CMD\s+(\[.*\])", dockerfile, re.MULTILINE)[-1])
    assert cmd[0] == "caredesk" and callable(build_parser().parse_args(cmd[1:]).func)
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither docker compose nor docker-compose is installed")
    env = {"CAREDESK_SECRET_KEY": "x", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    done = subprocess.run([*command, "-f", str(REPO / "compose.yaml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    # Without the secret key the file refuses to start anything, with a message that says so.
    done = subprocess.run([*command, "-f", str(REPO / "compose.yaml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, env={"PATH": env["PATH"]})
    assert done.returncode != 0 and "CAREDESK_SECRET_KEY" in done.stderr
