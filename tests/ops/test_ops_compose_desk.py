"""compose.yaml's desk without Docker: its services' own command lines and settings, run as processes on the test
database in its order (migrate, then web, worker, listener), and the set-up commands its header documents. The web
server's own healthcheck passes, a person made by those commands logs in and sees the inbox, and the worker and
the listener keep running. Only the database address and the web server's host and port differ from the file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from django.db import connection

from browser_support import Processes, free_port, test_database_url

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]
COMPOSE = (REPO / "compose.yaml").read_text()


def _resolve(value: str, given: dict[str, str]) -> str:
    """Compose's ``${VAR:-default}`` and ``${VAR:?message}``, from ``given`` (the shell compose would run in)."""
    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in given:
            return given[name]
        if kind == ":-":
            return rest
        raise AssertionError(f"compose.yaml needs {name}: {rest}")
    return re.sub(r"\$\{(\w+)(:[-?])([^}]*)\}", one, str(value))


def _environment(service: dict[str, Any], database_url: str, tmp: Path) -> dict[str, str]:
    shell = {"CAREDESK_SECRET_KEY": "compose-test-secret-key"}
    env = {k: _resolve(v, shell) for k, v in service["environment"].items()}
    env["DATABASE_URL"] = database_url  # the one address that differs: the test database, not the postgres service
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CAREDESK_", "DJANGO_", "DATABASE_"))}
    return {**base, **env, "CAREDESK_DATA_DIR": str(tmp), "PYTHONUNBUFFERED": "1"}


def test_the_compose_services_make_a_working_desk(tmp_path: Path) -> None:
    services = yaml.safe_load(COMPOSE)["services"]
    env = _environment(services["web"], test_database_url(), tmp_path)
    caredesk = [sys.executable, "-m", "caredesk"]

    migrate = subprocess.run([*caredesk, *services["migrate"]["command"][1:]], env=env, capture_output=True,
                             text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    # The header's set-up commands, as `docker compose run --rm web ...` runs them.
    setup = re.findall(r"^#\s+docker compose run --rm web caredesk (.+)$", COMPOSE, re.MULTILINE)
    assert len(setup) == 2
    for line in setup:
        done = subprocess.run([*caredesk, *line.split()], env={**env, "CAREDESK_PASSWORD": "compose-password-1"},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (line, done.stdout, done.stderr)

    port = free_port()
    web = services["web"]["command"][1:]
    web = [str(port) if a == "8000" else "127.0.0.1" if a == "0.0.0.0" else a for a in web]  # noqa: S104
    processes = Processes(tmp_path)
    try:
        processes.start("web", [*caredesk, *web], env)
        worker = processes.start("worker", [*caredesk, *services["worker"]["command"][1:]], env)
        listener = processes.start("listener", [*caredesk, *services["listener"]["command"][1:]], env)
        check = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in services["web"]["healthcheck"]["test"][1:]]
        check[0] = sys.executable
        deadline = time.monotonic() + 40
        while subprocess.run(check, capture_output=True, timeout=10).returncode != 0:
            assert time.monotonic() < deadline, processes.logs()
            time.sleep(0.5)

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            client.get("/login/")
            login = client.post("/login/", data={"username": "alice", "password": "compose-password-1",
                                                 "csrfmiddlewaretoken": client.cookies["csrftoken"]})
            assert login.status_code == 302, login.text[:300]
            inbox = client.get("/")
            assert inbox.status_code == 200 and "alice" in inbox.text and "New posts appear on their own" in inbox.text
        deadline = time.monotonic() + 20
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM procrastinate_workers")
                if cursor.fetchone()[0] >= 1:
                    break
            assert time.monotonic() < deadline, processes.logs()
            time.sleep(0.3)
        assert worker.poll() is None and listener.poll() is None, processes.logs()
        # JSON logs, as the compose file asks: every line the web server wrote parses.
        lines = [ln for ln in (tmp_path / "web.log").read_text().splitlines() if ln.strip()]
        assert lines and all(ln.startswith("{") for ln in lines), lines[:5]
        assert any('"logger": "caredesk.request"' in ln and '"path": "/login/"' in ln for ln in lines)
    finally:
        processes.stop()
