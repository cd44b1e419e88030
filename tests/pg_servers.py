"""Real PostgreSQL middlemen for the ops tests: a PgBouncer in front of the test database, and a primary with a
streaming replica of its own (made with initdb and pg_basebackup in a temporary directory, so the machine's
PostgreSQL configuration is never touched).

Both refuse to run as root, so under root (CI) they run as the ``postgres`` OS user: PgBouncer with its own
``-u postgres``, the PostgreSQL binaries through ``runuser``. Whatever is missing makes the caller skip, with the
reason.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from browser_support import free_port

PG_BIN = Path(os.environ.get("CAREDESK_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
)
OS_USER = "postgres"


def _is_root() -> bool:
    return os.geteuid() == 0


def _os_user() -> pwd.struct_passwd | None:
    """The user the servers run as under root; None when not root (they run as whoever runs the tests)."""
    if not _is_root():
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no {OS_USER!r} OS user to run PostgreSQL/PgBouncer as")


def _private_dir(prefix: str) -> Path:
    """A temporary directory the servers' user owns (pytest's tmp_path is root's own, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    user = _os_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *args] if _os_user() is not None else args


def _run(args: list[str], timeout: float = 60) -> None:
    result = subprocess.run(_as_server_user(args), capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def _wait_for(conninfo: str, what: str, log: Path | None = None, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(conninfo, connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
                raise RuntimeError(f"{what} did not accept connections: {exc}\n{text}") from exc
            time.sleep(0.1)


# --- PgBouncer -------------------------------------------------------------------------------------------------


@dataclass
class Bouncer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A PgBouncer admin console command (SHOW STATS, SHOW POOLS, ...), as rows by column name."""
        # The console speaks only the simple query protocol, which psycopg's client-side cursor uses.
        with psycopg.connect(self.url("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
            cur = conn.execute(command)
            names = [column.name for column in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()] if names else []

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@contextlib.contextmanager
def pgbouncer(dbname: str, host: str, port: int, *, pool_mode: str = "transaction",
              pool_size: int = 4) -> Iterator[Bouncer]:
    """A PgBouncer on a free port in front of ``host:port/dbname`` (which trusts our user), stopped afterwards.
    Skips when the pgbouncer binary is missing."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run installs it)")
    workdir = _private_dir("caredesk-pgbouncer-")
    listen = free_port()
    ini = workdir / "pgbouncer.ini"
    # auth_type=any: the client's user name is ignored and the [databases] entry's user logs in, so no auth_file.
    ini.write_text(f"""[databases]
{dbname} = host={host} port={port} dbname={dbname} user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = any
admin_users = postgres
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 200
server_lifetime = 3600
ignore_startup_parameters = extra_float_digits
""")
    os.chmod(ini, 0o644)
    log = workdir / "pgbouncer.log"
    args = [PGBOUNCER, str(ini)]
    if _os_user() is not None:
        args[1:1] = ["-u", OS_USER]  # PgBouncer refuses root; it drops to this user itself
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(f"host=127.0.0.1 port={listen} dbname={dbname} user=postgres", "PgBouncer", log)
        yield Bouncer(listen, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# --- a primary and its streaming replica ------------------------------------------------------------------------


@dataclass
class StreamingPair:
    root: Path
    primary_port: int
    replica_port: int

    def url(self, dbname: str, *, replica: bool = False, application_name: str = "") -> str:
        port = self.replica_port if replica else self.primary_port
        query = f"?application_name={application_name}" if application_name else ""
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}{query}"

    def conninfo(self, dbname: str = "postgres", *, replica: bool = False) -> str:
        port = self.replica_port if replica else self.primary_port
        return f"host=127.0.0.1 port={port} dbname={dbname} user=postgres"

    def logs(self) -> str:
        out = []
        for name in ("primary.log", "replica.log"):
            path = self.root / name
            if path.exists():
                out.append(f"--- {name} ---\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)


@contextlib.contextmanager
def streaming_pair() -> Iterator[StreamingPair]:
    """A throwaway PostgreSQL primary and a hot-standby replica streaming from it (``pg_basebackup -R``), on free
    ports, in a temporary directory; both stopped (immediate) and removed afterwards, even on failure."""
    for tool in ("initdb", "pg_ctl", "pg_basebackup"):
        if not os.access(PG_BIN / tool, os.X_OK):
            pytest.skip(f"{PG_BIN / tool} is missing: no PostgreSQL server binaries to make a primary and replica")
    if _is_root() and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb refuses root")
    root = _private_dir("caredesk-replication-")
    primary, replica = root / "primary", root / "replica"
    ports = free_port(), free_port()
    started: list[Path] = []

    def start(data: Path, port: int, log: Path) -> None:
        # fsync off: a throwaway cluster; it halves the start-up and every commit on this shared machine.
        options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off "
                   "-c wal_level=replica -c max_wal_senders=4 -c hot_standby=on -c shared_buffers=16MB")
        _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "30", "-l", str(log), "-o", options, "start"])
        started.append(data)

    try:
        # initdb's pg_hba trusts local and 127.0.0.1 connections, replication ones included.
        _run([str(PG_BIN / "initdb"), "-D", str(primary), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--locale=C", "--no-sync", "--no-instructions"])
        start(primary, ports[0], root / "primary.log")
        _run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(ports[0]), "-U", "postgres",
              "-D", str(replica), "-R", "-X", "stream", "-c", "fast", "--no-sync"])
        start(replica, ports[1], root / "replica.log")
        pair = StreamingPair(root, *ports)
        _wait_for(pair.conninfo(replica=True), "the replica", root / "replica.log")
        yield pair
    finally:
        for data in reversed(started):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], timeout=20)
        shutil.rmtree(root, ignore_errors=True)
