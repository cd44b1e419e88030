"""The embedded PostgreSQL server (from the ``pgserver`` package) that makes caredesk run with nothing installed.

Used only when ``DATABASE_URL`` is not set. The server lives in ``<data dir>/postgres`` and keeps its data between
runs; the process that starts it stops it on exit.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DATABASE_NAME = "caredesk"


def default_data_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about an unset XDG_RUNTIME_DIR, irrelevant here
        import platformdirs

        return Path(platformdirs.user_data_dir("caredesk", appauthor=False))


@dataclass
class Environment:
    database_url: str
    data_dir: Path
    server: Any = None  # pgserver.PostgresServer when embedded

    @property
    def embedded(self) -> bool:
        return self.server is not None

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


def _secret_key(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _start_embedded(data_dir: Path) -> tuple[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver's platformdirs warns about XDG_RUNTIME_DIR, irrelevant here
        import pgserver

        pgdata = data_dir / "postgres"
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")  # noqa: S608 - a constant, not input
    base = server.get_uri()
    # pgserver gives ".../postgres?host=/socket/dir"; point it at our own database instead.
    head, _, query = base.partition("?")
    url = head.rsplit("/", 1)[0] + "/" + DATABASE_NAME + ("?" + query if query else "")
    return url, server


class MissingSecretKey(Exception):
    pass


def prepare(data_dir: Path | None = None, *, generate_secret: bool = False) -> Environment:
    """Make sure a database and a secret key are configured, exporting both for child processes.

    Without ``CAREDESK_SECRET_KEY`` a key is generated and kept in the data dir only where that is safe: for the
    demo, and with the embedded database, whose data lives in the same directory on one machine. Against a
    ``DATABASE_URL`` (a real server, perhaps several machines) every process must be given the same key, so a
    missing one is an error rather than a per-machine key that would make another machine's sessions and
    credentials unreadable.
    """
    data_dir = Path(data_dir or os.environ.get("CAREDESK_DATA_DIR") or default_data_dir()).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    url = os.environ.get("DATABASE_URL")
    if not os.environ.get("CAREDESK_SECRET_KEY"):
        if url and not generate_secret:
            raise MissingSecretKey(
                "CAREDESK_SECRET_KEY is not set. With DATABASE_URL every web server and worker must share one "
                "secret key: set CAREDESK_SECRET_KEY to a long random string (python -c 'import secrets; "
                "print(secrets.token_urlsafe(50))')"
            )
        os.environ["CAREDESK_SECRET_KEY"] = _secret_key(data_dir)
    server = None
    if not url:
        log.info("starting the embedded PostgreSQL in %s", data_dir / "postgres")
        url, server = _start_embedded(data_dir)
        os.environ["DATABASE_URL"] = url
    return Environment(database_url=url, data_dir=data_dir, server=server)
