"""Fault benchmark: kill the worker with SIGKILL at random moments while it sends replies and polls posts.

    python bench/worker_kill_fault.py [--kills 60] [--replies 360] [--seed 8]

A real ``caredesk worker`` runs against a fresh benchmark database, polling three replay installations (every
demo brand, without looping, played fast) and sending the replies this script queues as cases arrive. The
replay platform appends every reply it publishes to a log, which is the platform's truth. The worker is killed
with SIGKILL ``--kills`` times at random moments (0.2 to 1.5 s apart) and started again each time.

Then recovery runs as in production: the stalled-jobs job hands the dead workers' jobs back, the sweeper settles
replies left *sending* (asking the platform) or *queued* without a job, and a worker drains the queue. The
lease is shortened to 2 s so the run takes minutes, not hours. Reported:

- replies published twice (platform log entries per idempotency key > 1): must be 0
- replies lost: published but not recorded as sent, or recorded as sent but never published: must be 0
- replies left in a state an agent cannot see or act on (queued or sending after recovery): must be 0
- replies in *delivery unknown* (visible, with the agent's three choices): counted, allowed
- posts lost (in the script, not stored) or duplicated (stored twice): must be 0
- database deadlocks, in any session (the worker's too, from ``pg_stat_database``): counted
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _db import setup_database

LEASE_SECONDS = 2.0
SPEED = 20.0  # the ten-minute script plays in about 30 s


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "caredesk", "worker", "--concurrency", "4"], env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--replies", type=int, default=360)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    os.environ["CAREDESK_REPLY_LEASE_SECONDS"] = str(LEASE_SECONDS)
    os.environ["CAREDESK_POLL_INTERVAL"] = "0.5"
    url = setup_database()
    from django.db import OperationalError, connection, transaction
    from procrastinate.contrib.django import app

    from caredesk.accounts.actions import do_create_brand, do_create_user
    from caredesk.cases.models import Case, Post
    from caredesk.connectors.actions import do_create_installation
    from caredesk.connectors.builtin.replay.brands import DEMO_BRANDS
    from caredesk.connectors.builtin.replay.provider import ReplayProvider, read_publish_log
    from caredesk.connectors.models import ConnectorInstallation
    from caredesk.connectors.runtime import get_provider
    from caredesk.jobs.worker import run_worker
    from caredesk.outbox.actions import do_queue_reply
    from caredesk.outbox.models import Reply
    from caredesk.outbox.tasks import retry_stalled, sweep_replies_now

    work = Path(tempfile.mkdtemp(prefix="caredesk-fault-"))
    publish_log = work / "platform.jsonl"
    with transaction.atomic():
        agent = do_create_user("bench-agent", "bench-password-1", is_site_owner=True)
        for info in DEMO_BRANDS.values():
            brand = do_create_brand(info.name, info.key)
            do_create_installation(
                brand, "replay", f"{info.name} replay",
                {"brand": info.key, "speed": SPEED, "loop": False, "publish_log": str(publish_log)},
                own_account_ids=list(info.account_ids), own_handles=[info.handle],
            )
    env = {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(work)}
    worker_log = work / "worker.log"

    stop = threading.Event()
    queued = 0
    deadlocks: list[str] = []

    def queue_replies() -> None:
        """As an agent would: answer the newest customer post of random cases, until enough are queued."""
        nonlocal queued
        from django.db import close_old_connections

        local = random.Random(args.seed + 1)
        while not stop.is_set() and queued < args.replies:
            posts = list(Post.objects.filter(direction="inbound", case__isnull=False).values_list("pk", "case_id"))
            if not posts:
                time.sleep(0.2)
                continue
            post_id, case_id = local.choice(posts)
            try:
                with transaction.atomic():
                    case = Case.objects.select_for_update().get(pk=case_id)
                    post = Post.objects.select_related("installation", "author").get(pk=post_id)
                    do_queue_reply(case, post, f"Can I help? (#{queued})", agent, datetime.now(UTC))
            except OperationalError as exc:  # a deadlock with the worker's ingest: the agent would click again
                deadlocks.append(str(exc).splitlines()[0])
                continue
            queued += 1
            time.sleep(local.uniform(0.005, 0.05))
        close_old_connections()

    # Before anything runs: the periodic jobs are deferred by the worker itself (poll every 2 s).
    worker = _start_worker(env, worker_log)
    replier = threading.Thread(target=queue_replies, daemon=True)
    replier.start()
    started = time.monotonic()
    kills = 0
    try:
        while kills < args.kills:
            time.sleep(rng.uniform(0.2, 1.5))
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = _start_worker(env, worker_log)
        # Let the last worker finish the script and the replies, as a desk would after its last crash.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (replier.is_alive() or Reply.objects.filter(
                state__in=["queued", "sending"]).exists() or not _script_done(ConnectorInstallation)):
            time.sleep(1)
    finally:
        stop.set()
        replier.join(timeout=10)
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    run_s = time.monotonic() - started

    # Recovery, as the periodic jobs do it: stalled jobs back to the queue, replies settled, queue drained.
    from asgiref.sync import async_to_sync

    for _ in range(10):
        async_to_sync(retry_stalled)(app.job_manager, 0)
        sweep_replies_now(datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS * 2))
        run_worker(2, wait=False, install_signal_handlers=False)
        if not Reply.objects.filter(state__in=["queued", "sending"]).exists():
            break
    # The script's posts not yet polled (the worker was killed near the end): one last poll of each.
    from caredesk.connectors.tasks import poll_installation

    for installation_id in ConnectorInstallation.objects.values_list("pk", flat=True):
        poll_installation(installation_id, datetime.now(UTC) + timedelta(hours=1))

    published = Counter(entry["key"] for entry in read_publish_log(str(publish_log)))
    replies = list(Reply.objects.values_list("idempotency_key", "state"))
    states = Counter(state for _, state in replies)
    twice = sum(1 for n in published.values() if n > 1)
    lost = sum(1 for key, state in replies if (state == "sent") != (key in published) and state != "unknown")
    invisible = states["queued"] + states["sending"]
    unknown_published = sum(1 for key, state in replies if state == "unknown" and key in published)

    expected: set[str] = set()
    for installation in ConnectorInstallation.objects.all():
        provider = get_provider(installation)
        assert isinstance(provider, ReplayProvider)
        expected |= {p.external_id for p in provider.posts}
    stored = list(Post.objects.values_list("external_id", flat=True))
    stored_script = [e for e in stored if not e.startswith("replay-reply-")]  # ours are the replies we sent
    posts_lost = len(expected - set(stored_script))
    posts_duplicated = len(stored_script) - len(set(stored_script))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
        jobs_left = cursor.fetchone()[0]
        # Every deadlock PostgreSQL broke in this (fresh) database, the worker's side included: the count above
        # sees only those that aborted the agent's transaction.
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        db_deadlocks = cursor.fetchone()[0]

    print(f"worker killed with SIGKILL {kills} times in {run_s:.0f} s; {len(replies)} replies queued, "
          f"{sum(published.values())} publications on the platform")
    print(f"reply states after recovery: {dict(states)}")
    print(f"replies published twice:            {twice}")
    print(f"replies lost:                       {lost}")
    print(f"replies in a state nobody can act on: {invisible}")
    print(f"replies shown as delivery unknown:  {states['unknown']} (of which in fact published: "
          f"{unknown_published})")
    print(f"script posts: {len(expected)}; lost: {posts_lost}; duplicated: {posts_duplicated}")
    print(f"jobs still waiting or running (the periodic ones): {jobs_left}")
    print(f"queueing a reply hit a database deadlock with the worker {len(deadlocks)} times (retried)")
    print(f"deadlocks in the database, any session (pg_stat_database): {db_deadlocks}")
    ok = twice == 0 and lost == 0 and invisible == 0 and posts_lost == 0 and posts_duplicated == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _script_done(installation_model: type) -> bool:
    from caredesk.connectors.builtin.replay.provider import ReplayProvider
    from caredesk.connectors.runtime import get_provider

    for installation in installation_model.objects.all():  # type: ignore[attr-defined]
        provider = get_provider(installation)
        assert isinstance(provider, ReplayProvider)
        if installation.cursor.get("position", 0) < len(provider.posts):
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
