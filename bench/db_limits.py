"""Where one PostgreSQL stops: what each caredesk process costs it, and what one post costs it.

    python bench/db_limits.py [--posts 3000] [--batch 100] [--pgbench-seconds 15]

On a database of its own (``caredesk_bench_limits``):

1. **Connections per process.** Starts, one at a time, ``caredesk serve`` (pool off, then ``CAREDESK_DB_POOL_MAX=4``),
   with one and then five live-stream clients, ``caredesk worker --concurrency 4`` and ``caredesk listen``, and
   counts that database's backends in ``pg_stat_activity`` once each settles.
2. **What one post writes.** Ingests ``--posts`` posts through ``ingest_posts`` in batches (as a poll stores them)
   and divides the change in ``pg_stat_database`` (rows inserted and updated, commits) and in the WAL position
   (``pg_current_wal_lsn``) by the posts stored: the write volume a primary, its disk and its replicas carry per post.
3. **The server's own ceiling here.** pgbench (if on PATH) on a database of its own: TPC-B-like read-write
   transactions (``-c 8 -j 2``) and read-only ones (``-S``), as the yardstick that step 2's figures divide.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _db

DB = "caredesk_bench_limits"
PGBENCH_DB = "caredesk_bench_pgbench"


def _backends(admin: str, name: str) -> int:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]).fetchone()[0])


def _settle(admin: str, name: str, seconds: float = 4.0) -> int:
    time.sleep(seconds)
    return _backends(admin, name)


def connections_per_process(admin: str, url: str, work: Path) -> list[tuple[str, int]]:
    import httpx

    from caredesk.accounts.actions import do_create_brand, do_create_user

    brand = do_create_brand("Limits")
    do_create_user("limits", "limits-password-1", memberships=[(brand, "agent")])
    from django.db import connections

    connections.close_all()
    env = {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(work)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    rows: list[tuple[str, int]] = [("nothing running", _backends(admin, DB))]
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []
    streams: list[object] = []

    def start(label: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        log = (work / f"{label.split()[0]}-{len(procs)}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "caredesk", *args], env={**env, **(extra or {})},
                                      stdout=log, stderr=subprocess.STDOUT))

    def serve(port: int, pool: int) -> str:
        start("serve", ["serve", "--port", str(port)], {"CAREDESK_DB_POOL_MAX": str(pool)})
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("the web server did not start")

    def stream(base: str, n: int) -> None:
        for _ in range(n):
            client = httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=None))
            client.get("/login/")
            client.post("/login/", data={"username": "limits", "password": "limits-password-1",
                                         "csrfmiddlewaretoken": client.cookies["csrftoken"]})
            response = client.send(client.build_request("GET", "/stream"), stream=True)
            clients.append(client)
            streams.append(response)

    try:
        base = serve(18731, 0)
        for _ in range(20):
            httpx.get(f"{base}/login/")
        rows.append(("+ caredesk serve (no pool), idle after 20 requests", _settle(admin, DB)))
        stream(base, 1)
        rows.append(("+ 1 live-stream client on it", _settle(admin, DB)))
        stream(base, 4)
        rows.append(("+ 4 more live-stream clients on it", _settle(admin, DB)))
        pooled = serve(18732, 4)
        for _ in range(20):
            httpx.get(f"{pooled}/login/")
        rows.append(("+ caredesk serve (CAREDESK_DB_POOL_MAX=4), after 20 requests", _settle(admin, DB)))
        start("worker", ["worker", "--concurrency", "4"])
        rows.append(("+ caredesk worker --concurrency 4", _settle(admin, DB, 8)))
        start("listen", ["listen"])
        rows.append(("+ caredesk listen (no streaming installation)", _settle(admin, DB, 6)))
    finally:
        for response in streams:
            response.close()  # type: ignore[attr-defined]
        for client in clients:
            client.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
    return rows


def write_volume(admin: str, posts: int, batch: int) -> dict[str, float]:
    import psycopg
    from django.db import transaction

    from caredesk.accounts.actions import do_create_brand
    from caredesk.connectors.actions import do_create_installation, lock_installation
    from caredesk.connectors.base import NormalizedAuthor, NormalizedPost
    from caredesk.connectors.builtin.replay.script import load_script
    from caredesk.ingest.pipeline import ingest_posts

    brand = do_create_brand("Volume")
    installation = do_create_installation(brand, "replay", "volume", {"brand": "nimbus"},
                                          own_account_ids=["brand-volume"], own_handles=["VolumeCare"])
    texts = [p.text for p in load_script(None).posts]
    rng = random.Random(5)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    last: dict[int, str] = {}
    items = []
    for i in range(posts):
        a = rng.randrange(max(1, posts // 3))
        parent = last.get(a, "") if rng.random() < 0.33 else ""
        items.append(NormalizedPost(external_id=f"v{i}", author=NormalizedAuthor(f"a{a}", f"user{a}", "U", 10),
                                    text=rng.choice(texts), created_at=t0 + timedelta(seconds=i),
                                    in_reply_to_external_id=parent))
        last[a] = f"v{i}"

    def stats() -> tuple[int, int, int, int]:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")
            ins, upd, xact = conn.execute("SELECT tup_inserted, tup_updated, xact_commit FROM pg_stat_database "
                                          "WHERE datname = %s", [DB]).fetchone()
            lsn = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
        return int(ins), int(upd), int(xact), int(lsn)

    time.sleep(1)
    before = stats()
    own_wal = WalReader(admin)
    started = time.perf_counter()
    for i in range(0, posts, batch):
        with transaction.atomic():
            ingest_posts(lock_installation(installation.pk), "x", items[i:i + batch], datetime.now(UTC))
        own_wal.read()  # at once: others write too, and a busy server recycles WAL segments within seconds
    elapsed = time.perf_counter() - started
    own_wal.read()
    time.sleep(1.5)  # statistics reach pg_stat_database at the backend's next flush
    after = stats()
    ins, upd, xact, wal = (b - a for a, b in zip(before, after, strict=True))
    return {"posts": posts, "seconds": elapsed, "posts_per_s": posts / elapsed, "rows_inserted_per_post": ins / posts,
            "rows_updated_per_post": upd / posts, "commits": xact, "wal_bytes_per_post": wal / posts,
            "own_wal_bytes_per_post": own_wal.total / posts}


class WalReader:
    """The WAL written since the last read that touched this database's blocks (pg_walinspect): the WAL position
    alone counts every database of the server, and others may be writing. Commit records carry no block and are
    left out, so this errs low by some 40 bytes a commit. ``total`` is NaN where pg_walinspect is missing."""

    def __init__(self, admin: str) -> None:
        import psycopg

        head = admin.partition("?")[0].rsplit("/", 1)[0]
        self.conn = psycopg.connect(f"{head}/{DB}", autocommit=True)
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            self.total = 0.0
        except psycopg.Error:
            self.total = float("nan")
        self.oid = self.conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
        self.position = self.conn.execute("SELECT pg_current_wal_flush_lsn()").fetchone()[0]

    def read(self) -> None:
        if self.total != self.total:  # NaN
            return
        end, ahead = self.conn.execute("SELECT pg_current_wal_flush_lsn(), pg_current_wal_flush_lsn() > %s::pg_lsn",
                                       [self.position]).fetchone()
        if not ahead:
            return
        self.total += float(self.conn.execute(
            "SELECT coalesce(sum(record_length), 0) FROM pg_get_wal_records_info(%s, %s) WHERE block_ref LIKE %s",
            [self.position, end, f"%/{self.oid}/%"]).fetchone()[0])
        self.position = end


def pgbench(admin: str, seconds: int) -> dict[str, float]:
    if shutil.which("pgbench") is None:
        return {}
    import psycopg

    head = admin.partition("?")[0].rsplit("/", 1)[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PGBENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PGBENCH_DB}")
    url = f"{head}/{PGBENCH_DB}"
    subprocess.run(["pgbench", "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    out: dict[str, float] = {}
    for label, extra in (("tpcb_tps", []), ("select_tps", ["-S"])):
        done = subprocess.run(["pgbench", "-c", "8", "-j", "2", "-T", str(seconds), *extra, url],
                              capture_output=True, text=True, check=True)
        match = re.search(r"tps = ([\d.]+)", done.stdout)
        out[label] = float(match.group(1)) if match else float("nan")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PGBENCH_DB} WITH (FORCE)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pgbench-seconds", type=int, default=15, help="0: no pgbench")
    parser.add_argument("--no-connections", action="store_true", help="skip the connection counts")
    args = parser.parse_args()
    admin = _db._server_url()
    url = _db.setup_database(DB)
    work = Path(tempfile.mkdtemp(prefix="caredesk-limits-"))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if not args.no_connections:
        print("\nbackends on the database, cumulative:")
        for label, n in connections_per_process(admin, url, work):
            print(f"  {label:62} {n:3}")
    volume = write_volume(admin, args.posts, args.batch)
    print(f"\ningest of {volume['posts']} posts in batches of {args.batch}: {volume['posts_per_s']:.0f} posts/s; "
          f"per post {volume['rows_inserted_per_post']:.2f} rows inserted, "
          f"{volume['rows_updated_per_post']:.2f} rows updated, "
          f"{volume['own_wal_bytes_per_post']:.0f} bytes of WAL on this database's blocks "
          f"({volume['wal_bytes_per_post']:.0f} written by the whole server meanwhile; {volume['commits']} commits)")
    bench = pgbench(admin, args.pgbench_seconds) if args.pgbench_seconds else {}
    if bench:
        print(f"\npgbench scale 10, 8 clients, {args.pgbench_seconds} s: TPC-B-like {bench['tpcb_tps']:.0f} tps, "
              f"select-only {bench['select_tps']:.0f} tps")
    load = os.getloadavg()
    print(f"\nload average after (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
