"""Test configuration: a real PostgreSQL, always.

``DATABASE_URL`` wins; otherwise the server on 127.0.0.1:5432 (as on the project's machines); otherwise an embedded
pgserver in a temporary directory, so a fresh machine with only Python needs nothing else.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime

import pytest


def _local_server_url() -> str | None:
    import psycopg

    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(url, connect_timeout=2):
            return url
    except psycopg.Error:
        return None


def _choose_database() -> None:
    if os.environ.get("DATABASE_URL"):
        return
    url = _local_server_url()
    if url is None:
        import pgserver

        data_dir = tempfile.mkdtemp(prefix="caredesk-test-pg-")
        server = pgserver.get_server(data_dir, cleanup_mode="delete")
        url = server.get_uri()
        globals()["_embedded_server"] = server  # keep a reference: the server stops when it is collected
    os.environ["DATABASE_URL"] = url


_choose_database()
os.environ.setdefault("CAREDESK_SECRET_KEY", "caredesk-test-secret-key")


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
