"""The `caredesk` command end to end, in subprocesses, as a user would run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    params = connection.settings_dict
    return psycopg.connect(
        dbname="postgres", user=params["USER"], host=params["HOST"], port=params["PORT"] or None, autocommit=True,
        password=params["PASSWORD"] or None,
    )


def _fresh_database(name: str, template: str | None = None) -> str:
    """A new database on the test server: empty, for commands that migrate their own schema, or a copy of
    ``template``."""
    params = connection.settings_dict
    with _admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    host = params["HOST"]
    if host.startswith("/"):
        return f"postgresql://{params['USER']}@/{name}?host={host}"
    return f"postgresql://{params['USER']}@{host}:{params['PORT'] or 5432}/{name}"


def _caredesk(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "caredesk", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # Named after this run, like the test database, so concurrent runs on one server don't drop each other's.
    url = _fresh_database(f"{connection.settings_dict['NAME']}_cli")
    return {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(tmp_path)}


@pytest.fixture(scope="session")
def _migrated_template(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A database that ``caredesk migrate`` migrated once per run, copied for each test that needs a schema but
    does not test migrating (``CREATE DATABASE ... TEMPLATE`` takes a fraction of a second, migrating seconds)."""
    with django_db_blocker.unblock():
        name = f"{connection.settings_dict['NAME']}_cli_tpl"
        url = _fresh_database(name)
    migrated = _caredesk("migrate", env={**os.environ, "DATABASE_URL": url})
    assert migrated.returncode == 0, migrated.stderr
    yield name
    with django_db_blocker.unblock(), _admin() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def migrated_env(tmp_path: Path, _migrated_template: str) -> dict[str, str]:
    """Like ``env``, on a database already migrated by ``caredesk migrate``."""
    url = _fresh_database(f"{connection.settings_dict['NAME']}_cli", template=_migrated_template)
    return {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(tmp_path)}


def test_migrate_createuser_and_ingest(env, tmp_path):
    assert _caredesk("migrate", env=env).returncode == 0
    made = _caredesk("createuser", "dana", "--password", "a-long-password", "--token", env=env)
    assert made.returncode == 0, made.stderr
    assert "created user dana" in made.stdout and "API token" in made.stdout
    again = _caredesk("createuser", "dana", "--password", "a-long-password", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    weak = _caredesk("createuser", "eve", "--password", "short", env=env)
    assert weak.returncode == 2 and "too short" in weak.stderr

    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"id": "1", "text": "internet down", "created_at": "2026-11-20T10:00:00Z", "author_id": "u1"})
        + "\n{broken\n"
    )
    imported = _caredesk("ingest", str(path), "--brand", "acme", "--quiet", env=env)
    assert imported.returncode == 1
    assert "imported 1 posts" in imported.stdout
    assert "in.jsonl:2: rejected" in imported.stderr


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def test_demo_on_embedded_database_shows_cases_and_stops_cleanly(tmp_path):
    """The first Quickstart command: no DATABASE_URL, so the embedded pgserver; cases arrive within seconds."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    port = _free_port()
    data_dir = tmp_path / "data"
    demo = subprocess.Popen(
        [sys.executable, "-m", "caredesk", "demo", "--port", str(port), "--data-dir", str(data_dir),
         "--speed", "5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    web = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:
        assert _wait_for(lambda: web.get("/healthz").json() == {"status": "ok"}, 90), "the desk did not start"
        login = web.get("/login/")
        assert login.status_code == 200
        signed_in = web.post("/login/", data={"username": "ana", "password": "caredesk-demo",
                                              "csrfmiddlewaretoken": web.cookies["csrftoken"]})
        assert signed_in.status_code == 302, signed_in.text
        health = {}

        def has_cases() -> bool:
            nonlocal health
            health = web.get("/healthz").json()  # with Ana's session: counts of her brands
            return health["cases"] > 0

        assert _wait_for(has_cases, 90), "no cases arrived from the replay connector"
        assert health["status"] == "ok" and health["posts"] >= health["cases"] > 0
    finally:
        web.close()
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output
    assert "login: ana / caredesk-demo" in output
    assert "stopped." in output
    assert (data_dir / "postgres").is_dir()
    # Nothing is left listening on the port.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_unmigrated_database_says_run_migrate(env):
    for args in (["user", "list"], ["brand", "create", "acme"], ["token", "list"], ["ingest", "x.jsonl"], ["worker"]):
        result = _caredesk(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert "run caredesk migrate" in result.stderr, args
        assert "Traceback" not in result.stderr


def test_brands_people_and_tokens(migrated_env):
    env = migrated_env
    made = _caredesk("brand", "create", "acme", "--name", "Acme Mobile", env=env)
    assert made.returncode == 0 and "brand acme (Acme Mobile) created" in made.stdout
    assert "already exists" in _caredesk("brand", "create", "acme", "--name", "Acme Mobile", env=env).stdout
    assert _caredesk("brand", "create", "nimbus", env=env).returncode == 0
    bad_slug = _caredesk("brand", "create", "no spaces", env=env)
    assert bad_slug.returncode == 2 and "invalid slug" in bad_slug.stderr

    ana = _caredesk("user", "add", "ana", "--brand", "acme", "--role", "supervisor", "--brand", "nimbus",
                    "--role", "agent", "--password", "a-long-password", "--token", env=env)
    assert ana.returncode == 0, ana.stderr
    assert "supervisor of acme, agent of nimbus" in ana.stdout
    token = ana.stdout.split("API token (shown once): ")[1].split()[0]
    refusals = {
        ("user", "add", "bad name!", "--brand", "acme", "--role", "agent"): "invalid username",
        ("user", "add", "me", "--brand", "acme", "--role", "agent"): "reserved",
        ("user", "add", "ben", "--brand", "nowhere", "--role", "agent"): "no brand nowhere",
        ("user", "add", "ben", "--brand", "acme", "--brand", "nimbus", "--role", "agent", "--role", "admin",
         "--role", "agent"): "one --role per --brand",
        ("user", "add", "ANA", "--brand", "acme", "--role", "agent"): "already exists",
    }
    for args, message in refusals.items():
        result = _caredesk(*args, "--password", "a-long-password", env=env)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert "Traceback" not in result.stderr
    assert _caredesk("createuser", "cy", "--brand", "nimbus", "--role", "agent", "--password",
                     "a-long-password", env=env).returncode == 0

    people = _caredesk("user", "list", env=env).stdout
    assert "ana\tactive\tsupervisor of acme, agent of nimbus" in people
    assert "cy\tactive\tagent of nimbus" in people

    listed = _caredesk("token", "list", "ana", env=env)
    assert listed.returncode == 0 and token[:8] in listed.stdout and token not in listed.stdout
    assert _caredesk("token", "revoke", "zzzz", env=env).returncode == 2
    revoked = _caredesk("token", "revoke", token[:8], env=env)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert "no tokens for ana" in _caredesk("token", "list", "ana", env=env).stdout

    gone = _caredesk("user", "deactivate", "cy", env=env)
    assert gone.returncode == 0 and "deactivated" in gone.stdout
    assert "cy\tinactive" in _caredesk("user", "list", env=env).stdout
    assert _caredesk("user", "deactivate", "nobody-here", env=env).returncode == 2
