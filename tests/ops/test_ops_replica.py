"""A real streaming replica: ``caredesk serve`` with ``DATABASE_URL`` at a primary and ``DATABASE_REPLICA_URL`` at its
hot standby (a throwaway pair made by tests/pg_servers.py). ``/metrics`` reads the replica, the inbox and every
write the primary: with the replica's replay paused, posts ingested on the primary show in the inbox while
``/metrics`` still counts the old ones, and it catches up once replay resumes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from test_ops_two_of_each import _login, _start_web, _wait

from browser_support import PASSWORD, Processes
from pg_servers import StreamingPair, streaming_pair

DBNAME = "caredesk_replica"
TOKEN = "replica-metrics-token"
INSERTED = re.compile(r"^caredesk_posts_inserted_total (\S+)$", re.MULTILINE)
RECEIVED = re.compile(r'^caredesk_installation_posts_received_total\{[^}]*\} (\S+)$', re.MULTILINE)


@pytest.fixture(scope="session")
def replication() -> Iterator[StreamingPair]:
    with streaming_pair() as pair:
        yield pair


def _caredesk(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "caredesk", *args], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, f"caredesk {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def _ingest(env: dict[str, str], tmp: Path, name: str, texts: list[str]) -> None:
    path = tmp / f"{name}.jsonl"
    path.write_text("".join(
        json.dumps({"id": f"{name}-{n}", "text": text, "created_at": "2026-12-01T10:00:00Z",
                    "author_id": f"{name}-author-{n}", "author_handle": f"{name}_{n}"}) + "\n"
        for n, text in enumerate(texts)
    ))
    _caredesk(env, "ingest", "--brand", "nimbus", "--platform", "x", "--quiet", str(path))


def _scrape(base: str) -> str:
    response = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text[:300]
    assert "caredesk_metrics_scrape_errors 0.0" in response.text, response.text
    return response.text


def _received(base: str) -> float:
    """Posts received, all installations: a column of the installations' rows, so as the replica has it."""
    return sum(float(value) for value in RECEIVED.findall(_scrape(base)))


def _inserted(base: str) -> float:
    """The posts counter: PostgreSQL's insert statistics, which only the primary has (see ops.metrics)."""
    match = INSERTED.search(_scrape(base))
    assert match, "no caredesk_posts_inserted_total"
    return float(match.group(1))


def _replica(pair: StreamingPair, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pair.conninfo(DBNAME, replica=True), autocommit=True) as conn:
        cursor = conn.execute(sql)
        return list(cursor.fetchall()) if cursor.description else []


def test_metrics_read_the_replica_and_everything_else_the_primary(replication: StreamingPair,
                                                                  tmp_path: Path) -> None:
    pair = replication
    with psycopg.connect(pair.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
        conn.execute(f"CREATE DATABASE {DBNAME}")
    env = {**os.environ, "DATABASE_URL": pair.url(DBNAME), "CAREDESK_DATA_DIR": str(tmp_path),
           "CAREDESK_ALLOWED_HOSTS": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    _caredesk(env, "migrate")
    _ingest(env, tmp_path, "early", [f"@NimbusCare early {n}: my router keeps dropping, please help" for n in range(3)])
    _caredesk(env, "user", "add", "ana", "--brand", "nimbus", "--role", "agent", "--password", PASSWORD)

    processes = Processes(tmp_path)
    try:
        web = _start_web(processes, env, "web-replica", CAREDESK_METRICS_TOKEN=TOKEN,
                         DATABASE_REPLICA_URL=pair.url(DBNAME, replica=True))
        _wait("the replica to have the first posts", lambda: _received(web) == 3.0, processes)
        _replica(pair, "SELECT pg_wal_replay_pause()")
        _wait("replay to pause", lambda: _replica(pair, "SELECT pg_get_wal_replay_pause_state()") == [("paused",)],
              processes)
        _ingest(env, tmp_path, "late", ["@NimbusCare Lisbon fibre box blinks red since noon, please help",
                                        "@NimbusCare Lisbon again: still red, nothing works"])

        # The inbox reads the primary: the new posts are there. Logging in writes a session: the primary, too
        # (a write on the replica would fail with "cannot execute INSERT in a read-only transaction").
        client = _login(web, "ana")
        inbox = client.get("/")
        assert inbox.status_code == 200 and inbox.text.count("Lisbon") >= 1, inbox.text[:500]
        # /metrics reads the paused replica: still the old count. Its posts counter alone is the primary's.
        assert _received(web) == 3.0
        _wait("the primary's insert statistics", lambda: _inserted(web) == 5.0, processes)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            _replica(pair, "INSERT INTO django_session (session_key, session_data, expire_date) "
                           "VALUES ('x', 'x', now())")

        _replica(pair, "SELECT pg_wal_replay_resume()")
        _wait("/metrics to catch up once replay resumes", lambda: _received(web) == 5.0, processes)
        log = processes.logs()
        assert "Traceback" not in log, log
        client.close()
    except BaseException:
        print(pair.logs())
        raise
    finally:
        processes.stop()
