"""Ingest through the worker: sustained posts/s with 1, 2 and 4 worker processes, and the delay from ingest to a
connected browser while ingesting at a steady rate.

    python bench/ingest_scale.py [--brands 8] [--posts 24000] [--batch 500] [--workers 1,2,4]
                                 [--rate 1000] [--seconds 15] [--latency-workers 2]

The whole path a stream's batch takes: each batch is stored raw (``store_payload``, as ``caredesk listen`` stores
it) and its installation's processing job deferred; real ``caredesk worker --concurrency 1`` processes then parse,
triage, dedupe, thread into cases and write posts, cases and activities, and publish the events after commit.

1. **Throughput**, for each worker count: ``--posts`` posts over ``--brands`` brands (one installation each) are
   stored first as batches of ``--batch``; the workers are started and ready; then every installation's job is
   deferred at once and the clock runs until the last batch is processed. The CPU seconds the worker processes
   and the database's backends of this benchmark spent are read from ``/proc`` (the model for more machines).
2. **Delay to the browser**: the ASGI server (uvicorn) with one logged-in agent of the first brand on ``/stream``
   (SSE), ``--latency-workers`` workers, and batches of 50 stored at ``--rate`` posts/s in turn over the brands
   for ``--warmup`` seconds (not counted) then ``--seconds``; per post of the agent's brand, from its batch's
   store committed to its ``post_received`` notification heard on the database (committed), and to that event
   read by the agent's SSE client (one process, one clock).

Its own database (``caredesk_bench_scale``), emptied between rounds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _db import setup_database
from stream_latency import _client, _free_port, _session_cookie

DB_NAME = os.environ.get("CAREDESK_SCALE_DB", "caredesk_bench_scale")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


class _BackendCpu:
    """CPU seconds of this benchmark database's PostgreSQL backends, sampled: a backend that ends between two
    samples loses at most one interval of its time, one that starts counts from zero."""

    def __init__(self, db_url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(db_url, autocommit=True)
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self, initial: bool = False) -> None:
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        for (pid,) in rows:
            cpu = _cpu_seconds(pid)
            if cpu is None:
                continue
            self._first.setdefault(pid, cpu if initial else 0.0)
            self._last[pid] = cpu

    def __enter__(self) -> _BackendCpu:
        self._sample(initial=True)

        def run() -> None:
            while not self._stop.wait(0.05):
                self._sample()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._sample()
        self._conn.close()

    @property
    def seconds(self) -> float:
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


def _posts(rng: random.Random, prefix: str, count: int, authors: int, t0: datetime, texts: list[str]) -> list[Any]:
    from caredesk.connectors.base import NormalizedAuthor, NormalizedPost

    posts = []
    last_by_author: dict[int, str] = {}
    for i in range(count):
        a = rng.randrange(authors)
        parent = last_by_author.get(a, "") if rng.random() < 0.33 else ""  # a third answer a thread
        pid = f"{prefix}-{i}"
        posts.append(NormalizedPost(
            external_id=pid,
            author=NormalizedAuthor(f"a{a}", f"user{a}", f"User {a}", rng.randrange(20_000)),
            text=rng.choice(texts) + f" #{i}",
            created_at=t0 + timedelta(milliseconds=i),
            in_reply_to_external_id=parent,
        ))
        last_by_author[a] = pid
    return posts


def _listen(db_url: str, heard: dict[int, float], ready: threading.Event, stop: threading.Event) -> None:
    """When each activity's notification (sent after its commit) reaches a listener on the database."""
    import psycopg

    from caredesk.cases.events import CHANNEL, parse_notification

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        ready.set()
        while not stop.is_set():
            for note in conn.notifies(timeout=0.2):
                at = time.perf_counter()
                for activity_id in parse_notification(note.payload).activity_ids:
                    heard.setdefault(activity_id, at)


def _p(delays: list[float]) -> str:
    delays = sorted(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    return f"p50 {statistics.median(delays):.0f} ms, p99 {p99:.0f} ms, max {delays[-1]:.0f} ms"


def _store(installation_id: int, posts: list[Any], cursor: dict[str, Any]) -> int:
    from caredesk.connectors.base import FetchResult
    from caredesk.connectors.batches import dump_batch
    from caredesk.connectors.models import RawPayload
    from caredesk.connectors.processing import store_payload

    return store_payload(installation_id, RawPayload.Source.STREAM, dump_batch(FetchResult(posts=posts,
                                                                                        cursor=cursor)),
                         datetime.now(UTC))


def _empty() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE cases_activity, cases_post, cases_case, cases_author, cases_customer,"
                       " connectors_rawpayload, procrastinate_jobs CASCADE")
        cursor.execute("VACUUM ANALYZE")


def _start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_workers")
    workers = [subprocess.Popen([sys.executable, "-m", "caredesk", "worker", "--concurrency", "1"], env=env)
               for _ in range(count)]
    deadline = time.monotonic() + 60
    while True:  # ready: registered with procrastinate, so started and listening
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM procrastinate_workers")
            if cursor.fetchone()[0] >= count:
                break
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not start")
        time.sleep(0.1)
    return workers


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _pending() -> int:
    from caredesk.connectors.models import RawPayload

    return RawPayload.objects.filter(status=RawPayload.Status.PENDING).count()


def _throughput(args: argparse.Namespace, installations: list[Any], env: dict[str, str], db_url: str,
                texts: list[str], workers: int) -> dict[str, float]:
    from django.db import transaction

    from caredesk.cases.models import Post
    from caredesk.connectors.models import RawPayload
    from caredesk.connectors.tasks import defer_pending

    _empty()
    rng = random.Random(workers)
    per_brand = args.posts // len(installations)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for n, installation in enumerate(installations):
        posts = _posts(rng, f"w{workers}b{n}", per_brand, args.authors, t0, texts)
        for i in range(0, len(posts), args.batch):
            _store(installation.pk, posts[i : i + args.batch], {"n": i})
    failed_before = RawPayload.objects.filter(status=RawPayload.Status.FAILED).count()
    processes = _start_workers(workers, env)
    try:
        worker_cpu0 = [_cpu_seconds(p.pid) or 0.0 for p in processes]
        with _BackendCpu(db_url) as backends:
            start = time.perf_counter()
            with transaction.atomic():
                for installation in installations:
                    defer_pending(installation.pk)
            while _pending():
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
        worker_cpu = sum((_cpu_seconds(p.pid) or 0.0) - c for p, c in zip(processes, worker_cpu0, strict=True))
    finally:
        _stop(processes)
    stored = Post.objects.count()
    failed = RawPayload.objects.filter(status=RawPayload.Status.FAILED).count() - failed_before
    if failed or stored != per_brand * len(installations):
        raise SystemExit(f"{failed} batches failed, {stored} posts stored of {per_brand * len(installations)}")
    return {"posts": stored, "seconds": elapsed, "rate": stored / elapsed, "worker_cpu": worker_cpu,
            "db_cpu": backends.seconds}


def _latency(args: argparse.Namespace, installations: list[Any], env: dict[str, str], db_url: str,
             texts: list[str], cookie: str, *, inline: bool = False) -> None:
    from caredesk.cases.models import Activity, Post
    from caredesk.connectors.processing import process_payload
    from caredesk.connectors.tasks import defer_pending

    _empty()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "caredesk.config.asgi:application", "--port", str(port),
         "--log-level", "warning", "--timeout-graceful-shutdown", "2"], env=env)
    processes = [server]
    try:
        if not inline:
            processes += _start_workers(args.latency_workers, env)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        stop, ready = threading.Event(), threading.Event()
        arrivals: dict[int, float] = {}
        threading.Thread(target=_client, args=(f"http://127.0.0.1:{port}/stream", cookie, arrivals, ready, stop),
                         daemon=True).start()
        ready.wait(10)
        heard: dict[int, float] = {}
        listening = threading.Event()
        threading.Thread(target=_listen, args=(db_url, heard, listening, stop), daemon=True).start()
        listening.wait(10)
        time.sleep(0.5)
        rng = random.Random(1)
        size = 50
        tick = size / args.rate
        stored_at: dict[str, float] = {}  # batch prefix → when its store committed
        warm = int(args.warmup * args.rate / size)  # the first batches start the pace; not counted
        batches = warm + int(args.seconds * args.rate / size)
        t0 = datetime.now(UTC)
        begin = time.perf_counter()
        behind = 0.0
        for b in range(batches):
            installation = installations[b % len(installations)]
            prefix = f"l{b}"
            batch = _posts(rng, prefix, size, args.authors, t0, texts)
            if inline:
                # As the stream listener does: store, then process in the same process before the next batch;
                # the delay counts from the batch's arrival (before its store).
                stored_at[prefix] = time.perf_counter()
                process_payload(_store(installation.pk, batch, {"n": b}), datetime.now(UTC))
            else:
                _store(installation.pk, batch, {"n": b})
                stored_at[prefix] = time.perf_counter()
                defer_pending(installation.pk)
            if os.environ.get("BENCH_DEBUG") and b % 20 == 0:
                print(f"t={time.perf_counter() - begin:5.1f}s pending batches {_pending()}", flush=True)
            wait = begin + (b + 1) * tick - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                behind = max(behind, -wait)
        offered = batches * size / (time.perf_counter() - begin)
        deadline = time.monotonic() + 60
        while _pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        stop.set()
    finally:
        _stop(processes)
    brand_id = installations[0].brand_id
    external = dict(Post.objects.filter(installation=installations[0]).values_list("pk", "external_id"))
    delays, committed = [], []
    missing = 0
    for activity_id, data in Activity.objects.filter(kind="post_received", brand_id=brand_id).values_list(
            "pk", "data"):
        prefix = external[data["post_id"]].partition("-")[0]
        if int(prefix[1:]) < warm:
            continue
        if activity_id in heard:
            committed.append((heard[activity_id] - stored_at[prefix]) * 1000)
        if activity_id in arrivals:
            delays.append((arrivals[activity_id] - stored_at[prefix]) * 1000)
        else:
            missing += 1
    if not delays or not committed:
        raise SystemExit(f"no event reached the agent's stream ({missing} missing)")
    how = " (inline, as `caredesk listen`)" if inline else ""
    print(f"\ndelay to the browser{how}: {batches * size} posts stored at {offered:,.0f} posts/s offered, the first "
          f"{args.warmup:g} s not counted "
          f"(target {args.rate:g}; the feeder fell behind by at most {behind * 1000:.0f} ms), "
          f"{'no' if inline else args.latency_workers} workers, {len(installations)} brands")
    print(f"  stored → committed (its NOTIFY heard on the database): {_p(committed)}")
    print(f"  stored → agent's live stream ({len(delays)} posts of one brand, {missing} missing): {_p(delays)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brands", type=int, default=8)
    parser.add_argument("--posts", type=int, default=24_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--authors", type=int, default=3_000, help="per brand")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--latency-workers", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds fed at the rate before counting")
    parser.add_argument("--inline", action="store_true",
                        help="delay only: the feeder processes each batch as it stores it, as `caredesk listen` does")
    args = parser.parse_args()
    db_url = setup_database(DB_NAME)
    env = {**os.environ, "DATABASE_URL": db_url}

    from caredesk.accounts.actions import do_create_brand
    from caredesk.connectors.actions import do_create_installation
    from caredesk.connectors.builtin.replay.script import load_script
    from caredesk.connectors.models import ConnectorInstallation

    texts = [p.text for p in load_script(None).posts]
    installations = []
    for n in range(args.brands):
        brand = do_create_brand(f"Bench {n}")
        installations.append(do_create_installation(brand, "replay", f"bench {n}", {"brand": "nimbus"},
                                                    own_account_ids=[f"brand-{n}"], own_handles=[f"Bench{n}Care"]))
    # Not polled (the replay provider would poll its demo show, and cannot stream): their batches arrive stored,
    # as a stream's do. Processing a stored batch does not ask whether the installation is enabled.
    ConnectorInstallation.objects.update(enabled=False)
    cookie = _session_cookie(installations[0].brand)

    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores; {args.posts:,} posts over "
          f"{args.brands} brands in batches of {args.batch}")
    print(f"{'workers':>7} {'posts/s':>9} {'speed-up':>8} {'seconds':>8} {'worker CPU ms/post':>19} "
          f"{'DB CPU ms/post':>15}")
    first = None
    for workers in (int(w) for w in args.workers.split(",")):
        r = _throughput(args, installations, env, db_url, texts, workers)
        first = first or r["rate"]
        print(f"{workers:>7} {r['rate']:>9,.0f} {r['rate'] / first:>7.2f}x {r['seconds']:>8.1f} "
              f"{r['worker_cpu'] * 1000 / r['posts']:>19.3f} {r['db_cpu'] * 1000 / r['posts']:>15.3f}")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    if args.seconds > 0:
        _latency(args, installations, env, db_url, texts, cookie)
        if args.inline:
            _latency(args, installations, env, db_url, texts, cookie, inline=True)


if __name__ == "__main__":
    main()
