"""Load test: many agents' browsers on real web servers while posts are ingested, bounded in time.

    python bench/desk_load.py [--users 40] [--seconds 60] [--servers 2] [--ingest-rate 5] [--cases 2000]

Sets up a database of its own (``caredesk_bench_load``: ``--cases`` cases for one brand and ``--users`` agent
logins), starts ``--servers`` real ``caredesk serve`` processes on it, ingests posts at ``--ingest-rate`` a second
through ``ingest_posts`` (as a worker's poll does) in a thread of this process, and runs Locust (headless, in a
subprocess: its gevent must not patch this process) with ``--users`` agents from bench/locust_desk.py for
``--seconds``. Each agent logs in, keeps the live stream open and reads the inbox, the case list and cases.

Reported: requests/s and p50/p95/p99 per endpoint (Locust's figures), failures, and the event delay on the live
streams: from the activity row's creation (inside the ingest transaction) to its arrival at each agent's stream.
Why Locust: an established load tool whose users are plain Python (a login with CSRF, a stream kept open in a
greenlet beside the page loads), with percentiles per endpoint; a hand-made loop would be ours to get right.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _db

HERE = Path(__file__).resolve().parent
PASSWORD = "load-password-1"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _seed(cases: int, users: int) -> tuple[int, list[int], list[str]]:
    from django.db import transaction

    from caredesk.accounts.actions import do_create_brand, do_create_user
    from caredesk.cases.models import Case
    from caredesk.connectors.actions import do_create_installation, lock_installation
    from caredesk.connectors.base import NormalizedAuthor, NormalizedPost
    from caredesk.connectors.builtin.replay.script import load_script
    from caredesk.ingest.pipeline import ingest_posts

    brand = do_create_brand("Load")
    installation = do_create_installation(brand, "replay", "load", {"brand": "nimbus"},
                                          own_account_ids=["brand-load"], own_handles=["LoadCare"])
    usernames = [f"load{i}" for i in range(users)]
    for name in usernames:
        do_create_user(name, PASSWORD, memberships=[(brand, "agent")])
    texts = [p.text for p in load_script(None).posts]
    t0 = datetime.now(UTC) - timedelta(days=3)
    for start in range(0, cases, 500):
        batch = [NormalizedPost(external_id=f"seed{i}", author=NormalizedAuthor(f"s{i}", f"seed{i}", f"Seed {i}", 10),
                                text=random.choice(texts), created_at=t0 + timedelta(seconds=i))
                 for i in range(start, min(cases, start + 500))]
        with transaction.atomic():
            ingest_posts(lock_installation(installation.pk), "x", batch, datetime.now(UTC))
    ids = list(Case.objects.values_list("pk", flat=True))
    return installation.pk, ids, usernames


class Ingest(threading.Thread):
    """Posts at a fixed rate, in a batch every half second, as a worker's poll stores them."""

    def __init__(self, installation_id: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.installation_id, self.rate = installation_id, rate
        self.stop = threading.Event()
        self.stored = 0
        self.batch_ms: list[float] = []

    def run(self) -> None:
        from django.db import connection, transaction

        from caredesk.connectors.actions import lock_installation
        from caredesk.connectors.base import NormalizedAuthor, NormalizedPost
        from caredesk.ingest.pipeline import ingest_posts

        n, due, owed = 0, time.monotonic(), 0.0
        while not self.stop.is_set():
            owed += self.rate * 0.5
            count, owed = int(owed), owed - int(owed)
            posts = [NormalizedPost(external_id=f"live{n + i}", author=NormalizedAuthor(
                f"l{(n + i) % 500}", f"live{(n + i) % 500}", "Live", 10),
                text="my internet is down again, nothing works since this morning", created_at=datetime.now(UTC))
                for i in range(count)]
            n += count
            started = time.perf_counter()
            if posts:
                with transaction.atomic():
                    ingest_posts(lock_installation(self.installation_id), "x", posts, datetime.now(UTC))
                self.batch_ms.append((time.perf_counter() - started) * 1000)
                self.stored += count
            due += 0.5
            self.stop.wait(max(0.0, due - time.monotonic()))
        connection.close()


def _start_servers(count: int, env: dict[str, str], work: Path) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    import httpx

    procs, hosts = [], []
    for i in range(count):
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = (work / f"web-{i}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "caredesk", "serve", "--port", str(port)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
        hosts.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    for host in hosts:
        while True:
            try:
                if httpx.get(f"{host}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"web server {host} did not start; see {work}")
            time.sleep(0.3)
    return procs, hosts


def _report_locust(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    print(f"\n{'endpoint':26} {'requests':>8} {'fail':>5} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for row in rows:
        print(f"{row['Name'][:26]:26} {row['Request Count']:>8} {row['Failure Count']:>5} "
              f"{float(row['Requests/s']):7.1f} {row['50%']:>7} {row['95%']:>7} {row['99%']:>7}")
    return rows


def _report_sse(sse_log: Path, started: float) -> dict[str, float]:
    from caredesk.cases.models import Activity

    arrivals: list[tuple[int, float]] = []
    errors = 0
    for line in sse_log.read_text().splitlines() if sse_log.exists() else []:
        if line.startswith("#"):  # a stream that dropped and reconnected, with why
            errors += 1
            continue
        position, _, at = line.partition(" ")
        arrivals.append((int(position.rsplit("-", 1)[1]), float(at)))
    created = dict(Activity.objects.filter(pk__in={a for a, _ in arrivals}).values_list("pk", "created_at"))
    delays = [(at - created[a].timestamp()) * 1000 for a, at in arrivals
              if a in created and created[a].timestamp() >= started]
    if errors:
        print(f"\nlive stream: {errors} streams dropped and reconnected (see {sse_log})")
    if not delays:
        print("\nlive stream: no events received")
        return {}
    figures = {"events": len(delays), "p50": _percentile(delays, 50), "p95": _percentile(delays, 95),
               "p99": _percentile(delays, 99), "max": max(delays), "mean": statistics.fmean(delays)}
    print(f"\nlive stream: {figures['events']} events delivered; delay from the activity's creation to the "
          f"browser p50 {figures['p50']:.0f} ms, p95 {figures['p95']:.0f} ms, p99 {figures['p99']:.0f} ms, "
          f"max {figures['max']:.0f} ms")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--ingest-rate", type=float, default=5.0, help="posts a second")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=4, help="CAREDESK_DB_POOL_MAX of each server (0: off)")
    parser.add_argument("--db", default="caredesk_bench_load")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--steady", action="store_true",
                        help="count requests only once every agent has spawned and logged in (Locust's --reset-stats):"
                             " the steady state, without the burst of logins hashing passwords at the start")
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards")
    args = parser.parse_args(argv)

    admin = _db._server_url()
    url = _db.setup_database(args.db)
    installation_id, case_ids, usernames = _seed(args.cases, args.users)
    work = Path(tempfile.mkdtemp(prefix="caredesk-load-"))
    env = {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(work), "CAREDESK_POLL_INTERVAL": "3600",
           "CAREDESK_DB_POOL_MAX": str(args.pool), "CAREDESK_LOGIN_FAILURE_LIMIT": "1000"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    servers, hosts = _start_servers(args.servers, env, work)
    setup_file, sse_log, prefix = work / "setup.json", work / "sse.log", work / "locust"
    setup_file.write_text(json.dumps({"usernames": usernames, "password": PASSWORD, "cases": case_ids}))
    ingest = Ingest(installation_id, args.ingest_rate)
    steady = " (steady state)" if args.steady else ""
    print(f"{args.users} agents on {args.servers} servers for {args.seconds} s{steady}, ingest {args.ingest_rate}/s, "
          f"{len(case_ids)} cases; load before: {os.getloadavg()[0]:.2f}")
    started = time.time()
    try:
        ingest.start()
        locust_env = {**env, "LOAD_HOSTS": ",".join(hosts), "LOAD_SETUP": str(setup_file), "LOAD_SSE_LOG": str(sse_log)}
        done = subprocess.run([
            sys.executable, "-m", "locust", "-f", str(HERE / "locust_desk.py"), "--headless", "--only-summary",
            "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s", "--stop-timeout", "2",
            "--csv", str(prefix), "--loglevel", "ERROR", "--exit-code-on-error", "0",
            *(["--reset-stats"] if args.steady else []),
        ], env=locust_env, capture_output=True, text=True, timeout=args.seconds + 120)
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:])
            return 1
    finally:
        ingest.stop.set()
        ingest.join(timeout=10)
        for proc in servers:
            proc.terminate()
        for proc in servers:
            proc.wait(timeout=10)
    load = os.getloadavg()
    rows = _report_locust(prefix)
    sse = _report_sse(sse_log, started)
    batch = f", batch p50 {_percentile(ingest.batch_ms, 50):.0f} ms" if ingest.batch_ms else ""
    print(f"ingest: {ingest.stored} posts stored ({ingest.stored / args.seconds:.1f}/s){batch}")
    print(f"load average after (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; logs in {work}")
    if args.json:
        args.json.write_text(json.dumps({"endpoints": rows, "stream": sse, "ingested": ingest.stored,
                                         "load": load, "args": {k: str(v) for k, v in vars(args).items()}}))
    if args.drop:
        _drop(admin, args.db)
    return 0


def _drop(admin: str, name: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())
