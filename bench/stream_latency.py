"""Delay from ingest commit to the event reaching a connected browser stream (SSE), p50/p99.

    python bench/stream_latency.py [--posts 300] [--clients 1]

Starts the real ASGI server (uvicorn) on a benchmark database, connects logged-in SSE clients to ``/stream``, then
ingests posts one at a time through the normal pipeline and times, per post, commit → ``post_received`` event
received by every client. Clients and ingester share one clock (threads of this process).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _db import setup_database


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_cookie(brand: Any) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from caredesk.accounts.actions import do_create_user

    # An agent of the benchmark's brand: a stream carries only the events of its person's brands.
    user = do_create_user("bench-agent", "bench-password-1", memberships=[(brand, "agent")])
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key
    return session.session_key


def _client(url: str, cookie: str, arrivals: dict[int, float], ready: threading.Event, stop: threading.Event) -> None:
    try:
        with httpx.Client(timeout=httpx.Timeout(10, read=None), cookies={"sessionid": cookie}) as http:
            with http.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
                response.raise_for_status()
                ready.set()
                for line in response.iter_lines():
                    if line.startswith("id:"):  # a position, "txid-activity id"
                        arrivals.setdefault(int(line[3:].strip().rpartition("-")[2]), time.perf_counter())
                    if stop.is_set():
                        return
    except httpx.HTTPError:
        if not stop.is_set():
            raise  # the server went away while we were still measuring


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    db_url = setup_database()

    from django.db import transaction

    from caredesk.accounts.actions import do_create_brand
    from caredesk.cases.models import Activity
    from caredesk.connectors.actions import do_create_installation, lock_installation
    from caredesk.connectors.base import NormalizedAuthor, NormalizedPost
    from caredesk.ingest.pipeline import ingest_posts

    brand = do_create_brand("Bench")
    cookie = _session_cookie(brand)
    installation = do_create_installation(brand, "replay", "bench", {"brand": "nimbus"})
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "caredesk.config.asgi:application", "--port", str(port),
         "--log-level", "warning", "--timeout-graceful-shutdown", "2"], env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        stop = threading.Event()
        clients = []
        for _ in range(args.clients):
            arrivals: dict[int, float] = {}
            ready = threading.Event()
            thread = threading.Thread(
                target=_client, args=(f"http://127.0.0.1:{port}/stream", cookie, arrivals, ready, stop),
                daemon=True,
            )
            thread.start()
            ready.wait(10)
            clients.append(arrivals)
        time.sleep(0.5)

        committed: dict[int, float] = {}
        t0 = datetime.now(UTC)
        for i in range(args.posts):
            post = NormalizedPost(
                external_id=f"lat{i}", author=NormalizedAuthor(f"a{i % 50}", f"user{i % 50}"),
                text="my internet is down again, any news?", created_at=t0 + timedelta(seconds=i),
            )
            with transaction.atomic():
                report = ingest_posts(lock_installation(installation.pk), "x", [post], datetime.now(UTC))
            at = time.perf_counter()
            activity = Activity.objects.get(kind="post_received", data__post_id=report.post_ids[0])
            committed[activity.pk] = at
            time.sleep(0.02)
        time.sleep(2)
        stop.set()
        delays = [
            (arrivals[aid] - at) * 1000
            for arrivals in clients for aid, at in committed.items() if aid in arrivals
        ]
        missing = sum(1 for arrivals in clients for aid in committed if aid not in arrivals)
        delays.sort()
        if not delays:
            raise SystemExit(f"no event reached any client ({missing} missing)")
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        print(f"posts: {args.posts}, clients: {args.clients}, events received: {len(delays)}, missing: {missing}")
        print(f"commit → browser stream: p50 {statistics.median(delays):.1f} ms, p99 {p99:.1f} ms, "
              f"max {delays[-1]:.1f} ms")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
