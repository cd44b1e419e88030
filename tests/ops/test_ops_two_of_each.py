"""Two web servers and two workers on one database, as real processes: both serve the inbox, an event committed
anywhere reaches a live stream on either, replies queued through one are sent exactly once by one of the workers,
and a worker killed with SIGKILL while sending loses nothing.

Web server B and worker 2 run with the connection pool on (``CAREDESK_DB_POOL_MAX``), A and worker 1 without, so
the pool is exercised under ASGI with the live stream (on B) and beside procrastinate's own connections.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.test import override_settings
from procrastinate.contrib.django import app

from browser_support import PASSWORD, Processes, free_port, test_database_url
from caredesk.cases.models import Case
from caredesk.connectors.builtin.replay.provider import read_publish_log
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import sweep_replies_now
from factories import ingest, make_case, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db(transaction=True)
REPLIES = 16
REPLICA_APP = "caredesk-replica-reads"
WAIT = 20.0


def _wait(what: str, check, processes: Processes, timeout: float = WAIT):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}\n{processes.logs()}")


def _worker_ids() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM procrastinate_workers")
        return {row[0] for row in cursor.fetchall()}


def _login(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10)
    client.get("/login/")
    token = client.cookies["csrftoken"]
    response = client.post("/login/", data={"username": username, "password": PASSWORD,
                                            "csrfmiddlewaretoken": token})
    assert response.status_code == 302, response.text[:500]
    return client


class SseReader(threading.Thread):
    """Collects the ``data:`` lines of one /stream connection."""

    def __init__(self, client: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.events: list[str] = []
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with self.client.stream("GET", "/stream", timeout=httpx.Timeout(10, read=None)) as response:
                for line in response.iter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    if line.startswith("data:"):
                        self.events.append(line)
                    if self.stop.is_set():
                        return
        except httpx.HTTPError:
            return


@pytest.fixture
def work(tmp_path: Path) -> Iterator[tuple[Path, Processes, dict[str, str]]]:
    processes = Processes(tmp_path)
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CAREDESK_DATA_DIR": str(tmp_path),
        "CAREDESK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CAREDESK_POLL_INTERVAL": "60",  # the replay script stays quiet: this test's posts are its own
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        yield tmp_path, processes, env
    finally:
        processes.stop()


def _start_web(processes: Processes, env: dict[str, str], name: str, **extra: str) -> str:
    port = free_port()
    processes.start(name, [sys.executable, "-m", "caredesk", "serve", "--port", str(port)], {**env, **extra})
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(f"{name} to start", up, processes, timeout=40)
    return base


def test_two_web_servers_and_two_workers_share_one_database(work: tuple[Path, Processes, dict[str, str]]) -> None:
    tmp, processes, env = work
    publish_log = tmp / "platform.jsonl"
    installation = make_installation(publish_log=str(publish_log), loop=False)
    agent = make_user(brands=[installation.brand])
    cases = [make_case(installation, minutes=i) for i in range(4)]

    worker_env = {**env, "CAREDESK_REPLY_LEASE_SECONDS": "2"}
    first = processes.start("worker-1", [sys.executable, "-m", "caredesk", "worker", "--concurrency", "2"],
                            worker_env)
    first_id = _wait("worker 1 to register", lambda: _worker_ids(), processes)
    # Worker 2 and web B with the pool on: Django's connections pooled, procrastinate's own connector not.
    pooled = {"CAREDESK_DB_POOL_MAX": "4", "CAREDESK_DB_POOL_MIN": "1"}
    processes.start("worker-2", [sys.executable, "-m", "caredesk", "worker", "--concurrency", "2"],
                    {**worker_env, **pooled})
    _wait("worker 2 to register", lambda: len(_worker_ids()) >= 2, processes)
    web_a = _start_web(processes, env, "web-a")
    # Web B also has a "replica" (the same database under another application_name) for /metrics' reads.
    replica_url = test_database_url() + ("&" if "?" in test_database_url() else "?") + "application_name=" + REPLICA_APP
    web_b = _start_web(processes, env, "web-b", **pooled, DATABASE_REPLICA_URL=replica_url,
                       CAREDESK_METRICS_TOKEN="two-of-each-token")

    a, b = _login(web_a, agent.username), _login(web_b, agent.username)
    for client in (a, b):  # both serve the inbox and a case, from the same rows
        inbox = client.get("/")
        assert inbox.status_code == 200 and cases[0].subject[:20] in inbox.text
        assert client.get(f"/cases/{cases[0].pk}/").status_code == 200

    # A post ingested here (as a third process would) reaches a browser connected to web B.
    reader = SseReader(b)
    reader.start()
    assert reader.connected.wait(WAIT), processes.logs()
    report = ingest(installation, make_post("still no signal on my phone, please help", author_id="live-1"))
    live_case = Case.objects.get(posts__pk=report.post_ids[0])
    _wait("the post on web B's stream", lambda: any(f'"case": {live_case.pk}' in e for e in reader.events),
          processes)
    reader.stop.set()

    # Replies queued through web A; worker 1 is killed with SIGKILL once it is sending.
    csrf = a.cookies["csrftoken"]
    for n in range(REPLIES):
        case = cases[n % len(cases)]
        response = a.post(f"/cases/{case.pk}/reply", headers={"X-CSRFToken": csrf, "HX-Request": "true"},
                          data={"text": f"Can I help? ({n})", "idempotency_key": f"two-of-each-{n}"})
        assert response.status_code == 200, response.text[:300]
        if n == REPLIES // 2:
            _wait("a first reply to go out", lambda: Reply.objects.exclude(state="queued").exists(), processes)
            first.send_signal(signal.SIGKILL)
    first.wait(timeout=5)
    assert Reply.objects.count() == REPLIES

    # Recovery, as production runs it (outbox.tasks and jobs.tasks, on shorter clocks): the dead worker's jobs go
    # back to the queue, and replies it left *sending* are settled by asking the platform.
    def settled() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = ANY(%s)",
                           [list(first_id)])
            for (job_id,) in cursor.fetchall():
                app.job_manager.retry_job_by_id(job_id, retry_at=datetime.now(UTC))
        with override_settings(CAREDESK_REPLY_LEASE_SECONDS=2):
            sweep_replies_now(datetime.now(UTC))
        return not Reply.objects.filter(state__in=["queued", "sending"]).exists()

    _wait("every reply to settle", settled, processes, timeout=30)
    states = Counter(Reply.objects.values_list("state", flat=True))
    published = Counter(entry["key"] for entry in read_publish_log(str(publish_log)))
    assert states == {"sent": REPLIES}, states
    assert published == {f"two-of-each-{n}": 1 for n in range(REPLIES)}  # each exactly once, none lost

    # Web B's /metrics, read through its replica alias, counts what the workers did.
    metrics = b.get("/metrics", headers={"Authorization": "Bearer two-of-each-token"})
    assert metrics.status_code == 200
    assert f'caredesk_replies{{state="sent"}} {float(REPLIES)}' in metrics.text
    assert "caredesk_metrics_scrape_errors 0.0" in metrics.text
    with connection.cursor() as cursor:  # the pooled replica connection that answered is still open, idle
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [REPLICA_APP])
        assert cursor.fetchone()[0] >= 1

    # Both servers still answer after the kill.
    for client in (a, b):
        assert client.get(f"/cases/{cases[0].pk}/").status_code == 200
        client.close()
    reader.join(timeout=5)
