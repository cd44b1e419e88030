"""pytest plugin: point the suite at a real PostgreSQL before pytest-django reads the settings.

It must be a ``-p`` plugin rather than a conftest, and act on import: pytest-django configures Django in its
own earliest hook, before conftests load.

``DATABASE_URL`` wins; otherwise the server on 127.0.0.1:5432 (as on the project's machines); otherwise an
embedded pgserver in a temporary directory, so a machine with only Python needs nothing else. Each run uses its
own test database (``test_caredesk_<pid>``) so that concurrent runs on one server do not collide; databases left
by runs that died are dropped.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
_keep: list[Any] = []


def _reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _drop_orphans(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test_caredesk_%'")]
            for name in names:
                match = re.fullmatch(r"test_caredesk_(\d+)(?:_\w+)?", name)
                if match is None:
                    continue
                pid = int(match.group(1))
                try:
                    os.kill(pid, 0)
                    continue  # its run is still going
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


def configure() -> None:
    os.environ.setdefault("CAREDESK_SECRET_KEY", "caredesk-test-secret-key")
    if not os.environ.get("DATABASE_URL"):
        if _reachable(LOCAL_SERVER):
            os.environ["DATABASE_URL"] = LOCAL_SERVER
        else:
            import pgserver

            server = pgserver.get_server(tempfile.mkdtemp(prefix="caredesk-test-pg-"), cleanup_mode="delete")
            _keep.append(server)  # the server stops when its handle is collected
            os.environ["DATABASE_URL"] = server.get_uri()
    _drop_orphans(os.environ["DATABASE_URL"])
    os.environ["CAREDESK_TEST_DATABASE"] = f"test_caredesk_{os.getpid()}"


# On import: ``-p`` plugins are imported before any hook runs, pytest-django's included.
configure()
