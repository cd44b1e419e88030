"""Delay from a platform event to the case row committed, and to the event on an agent's live stream, p50/p99.

    python bench/connector_stream_delay.py [--posts 300] [--rate 20] [--platform double|mastodon|bluesky]

Starts a local streaming platform — the runtime tests' platform double (tests/connectors/runtime/
runtime_platform.py, a simple SSE server), or with ``--platform mastodon`` the fake Mastodon server of the
Mastodon provider's tests, which speaks Mastodon's streaming API, read by the real Mastodon provider; with
``--platform bluesky`` a live Jetstream v1 websocket of this script's, read by the real Bluesky provider (keyword
listening: each post mentions the brand's keyword) — a real
``caredesk listen`` process holding its installation, and the ASGI server with one
logged-in agent on ``/stream``. Then publishes posts on the platform at ``--rate`` per second and times, per post,
from the platform's clock at publication (``published_at``) to

* **committed**: the ``post_received`` notification heard on the database (``NOTIFY`` is sent after commit), and
* **agent stream**: that event received by the agent's SSE client.

Everything runs on this machine, so the clocks are one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _db import setup_database
from stream_latency import _client, _free_port, _session_cookie

RUNTIME_TESTS = Path(__file__).resolve().parent.parent / "tests" / "connectors" / "runtime"
MASTODON_TESTS = RUNTIME_TESTS.parent / "mastodon"


BENCH_DID = "did:plc:benchbrand"


class _LiveJetstream:
    """A Jetstream v1 ``/subscribe`` that sends each line as the benchmark publishes it."""

    def __init__(self) -> None:
        self.clients = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._queues: list[asyncio.Queue[str]] = []

    async def _handler(self, ws: Any) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.append(queue)
        self.clients += 1
        try:
            with contextlib.suppress(Exception):  # ends when the listener goes away
                while True:
                    await ws.send(await queue.get())
        finally:
            self._queues.remove(queue)
            self.clients -= 1

    def send(self, line: str) -> None:
        for queue in list(self._queues):
            self._loop.call_soon_threadsafe(queue.put_nowait, line)


@contextlib.contextmanager
def _live_jetstream() -> Iterator[_LiveJetstream]:
    from websockets.asyncio.server import serve

    live = _LiveJetstream()
    ready, holder = threading.Event(), {}

    async def main() -> None:
        async with serve(live._handler, "127.0.0.1", 0, compression=None) as server:
            live.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/subscribe"
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=live._loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield live
    finally:
        live._loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


def _listen(db_url: str, heard: dict[int, float], ready: threading.Event, stop: threading.Event) -> None:
    import psycopg

    from caredesk.cases.events import CHANNEL, parse_notification

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        ready.set()
        while not stop.is_set():
            for note in conn.notifies(timeout=0.5):
                at = time.time()
                for activity_id in parse_notification(note.payload).activity_ids:
                    heard.setdefault(activity_id, at)


def _percentiles(label: str, delays: list[float]) -> str:
    delays = sorted(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    return (f"{label}: p50 {statistics.median(delays):.1f} ms, p99 {p99:.1f} ms, max {delays[-1]:.1f} ms "
            f"({len(delays)} events)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="platform events per second")
    parser.add_argument("--platform", choices=("double", "mastodon", "bluesky"), default="double")
    args = parser.parse_args()
    db_url = setup_database()
    sys.path.insert(0, str(RUNTIME_TESTS))
    from runtime_platform import running_platform
    from runtime_providers import TEST_PROVIDERS

    from caredesk.accounts.actions import do_create_brand
    from caredesk.cases.models import Activity, Post
    from caredesk.connectors.actions import do_create_installation
    from caredesk.connectors.registry import register_provider

    for provider in TEST_PROVIDERS:
        register_provider(provider)  # the mastodon provider is installed already
    brand = do_create_brand("Bench")
    cookie = _session_cookie(brand)
    env = {**os.environ, "DATABASE_URL": db_url}
    processes: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        if args.platform == "mastodon":
            sys.path.insert(0, str(MASTODON_TESTS))
            from fake_mastodon import TOKEN, FakeMastodon, frame, mention, status

            fake = stack.enter_context(FakeMastodon())
            installation = do_create_installation(brand, "mastodon", "bench mastodon", {"instance": fake.url},
                                                  credentials={"access_token": TOKEN})
            stamps: dict[str, float] = {}

            def connected() -> bool:
                return bool(fake.live.get("user"))

            def publish(i: int) -> None:
                ext = str(9_000_000 + i)
                stamps[ext] = time.time()
                fake.push("user", frame("notification", mention(str(8_000_000 + i), status(
                    ext, f"@trwnh my internet is down again, any news? ({i})", mention_us=True))))
        elif args.platform == "bluesky":
            stamps = {}
            jetstream = stack.enter_context(_live_jetstream())
            dead = f"http://127.0.0.1:{_free_port()}"  # no appview: authors keep their DIDs, without waiting
            installation = do_create_installation(
                brand, "bluesky", "bench bluesky",
                {"service": dead, "jetstream": jetstream.url, "appview": dead, "keywords": ["nimbus"]},
                credentials={"identifier": BENCH_DID, "app_password": "unused-here", "did": BENCH_DID})

            def connected() -> bool:
                return jetstream.clients > 0

            def publish(i: int) -> None:
                now_us = int(time.time() * 1_000_000)
                rkey = f"3bench{i:07d}"
                stamps[f"at://did:plc:customer{i % 50}/app.bsky.feed.post/{rkey}"] = now_us / 1_000_000
                jetstream.send(json.dumps({
                    "did": f"did:plc:customer{i % 50}", "time_us": now_us, "kind": "commit",
                    "commit": {"rev": f"rev{i}", "operation": "create", "collection": "app.bsky.feed.post",
                               "rkey": rkey, "cid": f"bafybench{i}",
                               "record": {"$type": "app.bsky.feed.post", "langs": ["en"],
                                          "text": f"nimbus internet is down again, any news? ({i})",
                                          "createdAt": datetime.now(UTC).isoformat()}}}))
        else:
            platform = stack.enter_context(running_platform())
            installation = do_create_installation(brand, "test_stream", "bench stream", {"url": platform.url},
                                                  credentials={"token": "good-token"})

            def connected() -> bool:
                return bool(platform.connections)

            def publish(i: int) -> None:
                platform.post(f"bench{i}", "my internet is down again, any news?", author=f"a{i % 50}")
        port = _free_port()
        try:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "caredesk.config.asgi:application", "--port", str(port),
                 "--log-level", "warning", "--timeout-graceful-shutdown", "2"], env=env))
            processes.append(subprocess.Popen([sys.executable, str(RUNTIME_TESTS / "run_caredesk.py"), "listen"],
                                              env=env))
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.2)
            while not connected():  # the listener took the lease and connected
                if time.monotonic() > deadline:
                    raise SystemExit("the listener did not connect")
                time.sleep(0.1)
            stop = threading.Event()
            heard: dict[int, float] = {}
            arrivals: dict[int, float] = {}
            listening, streaming = threading.Event(), threading.Event()
            threading.Thread(target=_listen, args=(db_url, heard, listening, stop), daemon=True).start()
            # The SSE client of bench/stream_latency.py stamps arrivals with perf_counter; this bench needs the
            # wall clock the platform stamps events with, so it converts below.
            threading.Thread(target=_client, args=(f"http://127.0.0.1:{port}/stream", cookie, arrivals, streaming,
                                                   stop), daemon=True).start()
            listening.wait(10)
            streaming.wait(10)
            offset = time.time() - time.perf_counter()
            time.sleep(0.5)
            for i in range(args.posts):
                publish(i)
                time.sleep(1 / args.rate)
            deadline = time.monotonic() + 30
            while Post.objects.filter(installation=installation).count() < args.posts:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            time.sleep(2)
            stop.set()
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if args.platform in ("mastodon", "bluesky"):
            published = stamps
        else:
            published = {e["data"]["id"]: e["data"]["published_at"] for e in platform.events}
    post_ids = dict(Post.objects.filter(installation=installation).values_list("pk", "external_id"))
    activities = {a.pk: post_ids[a.data["post_id"]]
                  for a in Activity.objects.filter(kind="post_received", case__brand=brand)}
    committed = [(heard[aid] - published[ext]) * 1000 for aid, ext in activities.items()
                 if aid in heard and ext in published]
    streamed = [(arrivals[aid] + offset - published[ext]) * 1000 for aid, ext in activities.items()
                if aid in arrivals and ext in published]
    print(f"posts published: {args.posts} at {args.rate:g}/s, stored: {len(post_ids)}, "
          f"missing on the agent stream: {len(activities) - len(streamed)}")
    if committed:
        print(_percentiles("platform event → case committed", committed))
    if streamed:
        print(_percentiles("platform event → agent's live stream", streamed))


if __name__ == "__main__":
    main()
