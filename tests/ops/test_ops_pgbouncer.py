"""A real ``caredesk serve`` through a real PgBouncer in transaction pooling mode, as docs/deployment.md says to run
one: ``DATABASE_URL`` at PgBouncer, ``CAREDESK_DB_PGBOUNCER=1``, the live stream's LISTEN on ``DATABASE_DIRECT_URL``
straight to PostgreSQL, and a worker connected directly. Login, the inbox, a case page, the API, a reply queued
through the web server and sent by the worker, and a post that reaches the server's live stream.

PgBouncer's pool is 2 server connections, fewer than the web server's request threads, so consecutive requests
(and transactions) share server connections: anything that leaned on session state would show here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.db import connection
from test_ops_two_of_each import SseReader, _login, _start_web, _wait

from browser_support import Processes, test_database_url
from caredesk.accounts.actions import do_create_api_token
from caredesk.cases.models import Case
from caredesk.connectors.builtin.replay.provider import read_publish_log
from caredesk.outbox.models import Reply
from factories import ingest, make_case, make_installation, make_post, make_user
from pg_servers import Bouncer, pgbouncer

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 20.0
STREAM_APP = "caredesk-inbox-stream"  # the live stream's own connections (caredesk.inbox.stream)


@pytest.fixture
def bouncer() -> Iterator[Bouncer]:
    db = connection.settings_dict
    host = db.get("HOST") or ""
    if host.startswith("/") or not host:
        pytest.skip("the test database is on a unix socket (embedded server); this test needs it on TCP")
    with pgbouncer(db["NAME"], host, int(db.get("PORT") or 5432), pool_size=2) as running:
        yield running


def _stats(bouncer: Bouncer, dbname: str) -> dict[str, int]:
    for row in bouncer.admin("SHOW STATS"):
        if row["database"] == dbname:
            return {k: int(v) for k, v in row.items() if k.startswith("total_")}
    return {}


def test_web_server_through_pgbouncer_in_transaction_mode(bouncer: Bouncer, tmp_path: Path) -> None:
    dbname = connection.settings_dict["NAME"]
    publish_log = tmp_path / "platform.jsonl"
    installation = make_installation(publish_log=str(publish_log), loop=False)
    agent = make_user(brands=[installation.brand])
    token = do_create_api_token(agent)
    cases = [make_case(installation, minutes=i) for i in range(3)]

    processes = Processes(tmp_path)
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CAREDESK_DATA_DIR": str(tmp_path),
        "CAREDESK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CAREDESK_POLL_INTERVAL": "60",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        # The worker straight to PostgreSQL (advisory locks, LISTEN, procrastinate's prepared statements).
        processes.start("worker", [sys.executable, "-m", "caredesk", "worker", "--concurrency", "2"], env)
        before = _stats(bouncer, dbname)
        web = _start_web(processes, env, "web-pgbouncer", DATABASE_URL=bouncer.url(dbname),
                         CAREDESK_DB_PGBOUNCER="1", DATABASE_DIRECT_URL=test_database_url())
        client = _login(web, agent.username)

        inbox = client.get("/")
        assert inbox.status_code == 200 and cases[0].subject[:20] in inbox.text
        page = client.get(f"/cases/{cases[1].pk}/")
        assert page.status_code == 200 and cases[1].subject[:20] in page.text
        listed = httpx.get(f"{web}/api/cases", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listed.status_code == 200, listed.text[:300]
        assert {c.pk for c in cases} <= {item["id"] for item in listed.json()["items"]}

        # The live stream (its LISTEN on DATABASE_DIRECT_URL) carries a post ingested elsewhere.
        reader = SseReader(client)
        reader.start()
        assert reader.connected.wait(WAIT), processes.logs()
        report = ingest(installation, make_post("no signal since the storm, please help", author_id="live-pgb"))
        live_case = Case.objects.get(posts__pk=report.post_ids[0])
        _wait("the post on the stream", lambda: any(f'"case": {live_case.pk}' in e for e in reader.events),
              processes)
        reader.stop.set()
        # ...because its LISTEN is a PostgreSQL session of its own, not a PgBouncer client: through a transaction
        # pooler the notifications would be lost and only the stream's 5 s safety poll would find the post.
        with connection.cursor() as cursor:
            cursor.execute("SELECT application_name, state, query FROM pg_stat_activity WHERE datname = %s",
                           [connection.settings_dict["NAME"]])
            backends = cursor.fetchall()
        assert sum(1 for app, _state, query in backends if app == STREAM_APP and query.startswith("LISTEN")) >= 1, \
            backends
        assert STREAM_APP not in {row.get("application_name") for row in bouncer.admin("SHOW CLIENTS")}

        # A reply queued through PgBouncer (the job deferred in the request's transaction) is sent by the worker.
        csrf = client.cookies["csrftoken"]
        for n, case in enumerate(cases):
            response = client.post(f"/cases/{case.pk}/reply", headers={"X-CSRFToken": csrf, "HX-Request": "true"},
                                   data={"text": f"On it! ({n})", "idempotency_key": f"pgbouncer-{n}"})
            assert response.status_code == 200, response.text[:300]
        _wait("the replies to be sent",
              lambda: Reply.objects.filter(state="sent").count() == len(cases), processes, timeout=30)
        published = sorted(entry["key"] for entry in read_publish_log(str(publish_log)))
        assert published == [f"pgbouncer-{n}" for n in range(len(cases))]
        assert client.get(f"/cases/{cases[0].pk}/").status_code == 200  # the sent reply renders too

        # All of that went through PgBouncer, in transactions over its 2 server connections.
        after = _stats(bouncer, dbname)
        assert after["total_xact_count"] - before.get("total_xact_count", 0) >= 10, (before, after)
        log = processes.logs()
        assert "Traceback" not in log, log
        assert "prepared statement" not in bouncer.logs() + log
        client.close()
        reader.join(timeout=5)
    finally:
        processes.stop()
