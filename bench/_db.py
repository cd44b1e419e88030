"""Shared set-up for the benchmarks: a fresh database on a real PostgreSQL, migrated."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

BENCH_DB = "caredesk_bench"
_keep: list[Any] = []


def _server_url() -> str:
    import psycopg

    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(url, connect_timeout=2):
            return url
    except psycopg.Error:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="caredesk-bench-"), cleanup_mode="delete")
        _keep.append(server)
        return server.get_uri()


def setup_database(name: str | None = None) -> str:
    """Create an empty benchmark database called ``name`` (default: ``BENCH_DB`` as it is when called, which a
    benchmark may set to a name of its own), point Django at it, migrate. Returns its URL."""
    import psycopg

    name = name or BENCH_DB

    admin = _server_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = _point_django_at(admin, name)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def use_database(name: str) -> str:
    """Point Django at the existing benchmark database ``name`` (built earlier, e.g. by big_db.py). Returns its URL."""
    url = _point_django_at(_server_url(), name)
    import django

    django.setup()
    return url


def _point_django_at(admin: str, name: str) -> str:
    head, _, query = admin.partition("?")
    url = head.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("CAREDESK_SECRET_KEY", "caredesk-bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caredesk.config.settings")
    return url
