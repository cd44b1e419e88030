"""Fault benchmark: replies to Mastodon, Bluesky and X while the worker is killed with SIGKILL mid-send.

    python bench/reply_fault.py [--kills 20] [--replies 60] [--providers mastodon,bluesky,x,replay] [--seed 9]

For each provider a fake platform of the provider's own tests runs in this process on 127.0.0.1, speaking the
platform's wire format (tests/connectors/mastodon/fake_mastodon.py: statuses deduplicated by ``Idempotency-Key``;
tests/connectors/bluesky/bluesky_servers.py: a PDS where a record key cannot be written twice;
tests/connectors/x/fake_x.py: X, which has no idempotency key at all). Customer posts that exist there are polled
into a fresh benchmark database, ``--replies`` replies are queued to them, and a real ``caredesk worker`` sends
them while it is killed with SIGKILL ``--kills`` times, started again each time: each kill comes at a random
moment 0 to 80 ms after the new worker has a reply *sending* (a worker takes a second or two to start; a kill
before then would cut nothing). Each status or record creation takes 20 to 100 ms, and about one answer in eight
is lost after the platform published (a 503 from Mastodon or X, a dropped connection from the PDS), so the job
has to look (``find_reply``) or rely on the platform's key. ``replay`` (the built-in simulated platform, no
server, no delay, no lost answers) runs the same way for comparison.

Then recovery runs as in production (as bench/worker_kill_fault.py does): stalled jobs back to the queue, the
sweeper settles replies left *sending* by asking the platform, a worker drains the queue; the lease is 2 s.
Reported per provider, from the platform's own count (per idempotency key / record key, and per reply text):

- published twice: must be 0
- lost: published but not recorded sent, or recorded sent but not published: must be 0
- stuck: queued or sending after recovery: must be 0
- delivery unknown (visible, an agent chooses): counted, with how many of those were in fact published
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for folder in ("mastodon", "bluesky", "x"):  # the fake platforms of the providers' tests
    sys.path.insert(0, str(ROOT / "tests" / "connectors" / folder))

LEASE_SECONDS = 2.0
CREATE_DELAY = (0.02, 0.1)
LOSE_ANSWER_EVERY = 8  # about one send in eight loses its answer after publishing
POSTS = 20  # customer posts per provider; the replies are spread over them


@dataclass
class Outcome:
    provider: str
    queued: int = 0
    sent: int = 0
    published: int = 0
    twice: int = 0
    lost: int = 0
    stuck: int = 0
    unknown: int = 0
    unknown_published: int = 0
    failed: int = 0
    kills: int = 0
    interrupted: int = 0  # replies whose send a kill cut at least once (*sending* right after a kill)
    answers_lost: int = 0  # answers the platform dropped after publishing
    create_calls: int = 0  # status / record creations the platform was asked for
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.twice == 0 and self.lost == 0 and self.stuck == 0


class Platform:
    """One fake platform: where the installation points, what it knows, what it published per reply."""

    key = ""

    def __init__(self) -> None:
        self.answers_lost = 0
        self._armed = False

    def installation(self, brand: Any) -> Any:
        raise NotImplementedError

    def publications(self, idempotency_key: str, marker: str) -> int:
        """How often the platform published this reply: the larger of its count under the reply's key and the
        number of posts carrying the reply's text (which would catch a second post under another key)."""
        raise NotImplementedError

    def create_calls(self) -> int:
        raise NotImplementedError

    def vary(self, rng: random.Random) -> None:
        """Every 150 ms: a new creation delay, and now and then a lost answer (one at a time)."""
        self._delay(rng.uniform(*CREATE_DELAY))
        if self._armed and not self._pending():
            self.answers_lost += 1
            self._armed = False
        if not self._armed and rng.randrange(LOSE_ANSWER_EVERY) == 0:
            self._arm()
            self._armed = True

    def settle(self) -> None:
        """No more lost answers; count the last one if it was spent."""
        if self._armed and not self._pending():
            self.answers_lost += 1
        self._disarm()
        self._armed = False

    def _delay(self, seconds: float) -> None:
        raise NotImplementedError

    def _arm(self) -> None:
        raise NotImplementedError

    def _pending(self) -> bool:
        raise NotImplementedError

    def _disarm(self) -> None:
        raise NotImplementedError


class MastodonPlatform(Platform):
    key = "mastodon"

    def __init__(self, fake: Any) -> None:
        from fake_mastodon import mention, status

        super().__init__()
        self.fake = fake
        fake._server.handle_error = _quiet  # a killed worker resets its connections: not worth a traceback
        for n in range(POSTS):
            body = status(str(7000 + n), f"@trwnh my internet is down, day {n}", mention_us=True)
            fake.statuses[body["id"]] = body
            fake.notifications.append(mention(str(5000 + n), body))

    def installation(self, brand: Any) -> Any:
        from fake_mastodon import TOKEN

        from caredesk.connectors.setup import add_connection

        return add_connection(brand, "mastodon", "Brand on Mastodon", {"instance": self.fake.url},
                              {"access_token": TOKEN})

    def publications(self, idempotency_key: str, marker: str) -> int:
        by_text = sum(1 for s in self.fake.posted if marker in s["content"])
        return max(self.fake.published[idempotency_key], by_text)

    def create_calls(self) -> int:
        return sum(1 for r in list(self.fake.requests) if r.method == "POST" and r.path == "/api/v1/statuses")

    def _delay(self, seconds: float) -> None:
        self.fake.create_delay = seconds

    def _arm(self) -> None:
        self.fake.lose_answer_once = True

    def _pending(self) -> bool:
        return bool(self.fake.lose_answer_once)

    def _disarm(self) -> None:
        self.fake.lose_answer_once = False


_TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"


class BlueskyPlatform(Platform):
    key = "bluesky"
    customer = "did:plc:customer1aaaaaaaaaaaaaaa"

    def __init__(self, server: Any) -> None:
        super().__init__()
        self.server = server
        server.handle_error = _quiet
        pds = server.pds
        for n in range(POSTS):
            rkey = "3mmoqc2" + "".join(_TID_CHARS[(n >> (5 * i)) & 31] for i in range(5, -1, -1))
            uri = f"at://{self.customer}/app.bsky.feed.post/{rkey}"
            record = {"$type": "app.bsky.feed.post", "text": f"@acme.example.com my internet is down, day {n}",
                      "createdAt": f"2026-11-23T11:{n:02d}:00.000Z"}
            pds.records[(self.customer, "app.bsky.feed.post", rkey)] = {
                "uri": uri, "cid": f"bafyreicustomer{n:04d}", "value": record}
            pds.notifications.insert(0, {  # newest first, as Bluesky lists them
                "uri": uri, "cid": f"bafyreicustomer{n:04d}", "reason": "mention", "record": record,
                "author": {"did": self.customer, "handle": "kim.bsky.social", "displayName": "Kim"},
                "isRead": False, "indexedAt": f"2026-11-23T11:{n:02d}:01.000Z", "labels": []})

    def installation(self, brand: Any) -> Any:
        from bluesky_servers import APP_PASSWORD, BRAND_HANDLE

        from caredesk.connectors.setup import add_connection

        return add_connection(brand, "bluesky", "Brand on Bluesky",
                              {"service": self.server.url, "appview": self.server.url, "handle": BRAND_HANDLE},
                              {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD})

    def publications(self, idempotency_key: str, marker: str) -> int:
        from bluesky_servers import BRAND_DID

        from caredesk.connectors.builtin.bluesky import tid_from_key

        pds = self.server.pds
        with pds.lock:
            by_text = sum(1 for r in pds.posts_by(BRAND_DID) if marker in r["value"].get("text", ""))
            return max(pds.created[tid_from_key(idempotency_key)], by_text)

    def create_calls(self) -> int:
        return int(self.server.pds.calls["com.atproto.repo.createRecord"])

    def _delay(self, seconds: float) -> None:
        self.server.pds.create_delay = seconds

    def _arm(self) -> None:
        with self.server.pds.lock:
            self.server.pds.lose_answer.add(CREATE)

    def _pending(self) -> bool:
        with self.server.pds.lock:
            return CREATE in self.server.pds.lose_answer

    def _disarm(self) -> None:
        with self.server.pds.lock:
            self.server.pds.lose_answer.discard(CREATE)


class XPlatform(Platform):
    """X has no idempotency key: a send whose answer was lost is looked for among the brand's own posts."""

    key = "x"

    def __init__(self, fake: Any) -> None:
        from fake_x import tweet

        super().__init__()
        self.fake = fake
        fake.server.handle_error = _quiet
        fake.state.mentions = [tweet(str(1850000000000000000 + n), f"@TwitterDev my internet is down, day {n}")
                               for n in range(POSTS)]

    def installation(self, brand: Any) -> Any:
        from fake_x import ACCESS, CLIENT_ID, REFRESH

        from caredesk.connectors.setup import add_connection

        return add_connection(brand, "x", "Brand on X", {"api": self.fake.url},
                              {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})

    def publications(self, idempotency_key: str, marker: str) -> int:
        return sum(1 for p in list(self.fake.state.own_posts) if marker in p["text"])

    def create_calls(self) -> int:
        return len(self.fake.requests_to("POST", "/2/tweets"))

    def _delay(self, seconds: float) -> None:
        self.fake.create_delay = seconds

    def _arm(self) -> None:
        self.fake.lose_answer_once = True

    def _pending(self) -> bool:
        return bool(self.fake.lose_answer_once)

    def _disarm(self) -> None:
        self.fake.lose_answer_once = False


class ReplayPlatform(Platform):
    """The built-in simulated platform, for comparison: no server, no delay, no lost answers; its publication
    log (one ``O_APPEND`` line per reply, deduplicated by key) is its truth."""

    key = "replay"

    def __init__(self, work: Path) -> None:
        super().__init__()
        self.log = work / "replay-platform.jsonl"

    def installation(self, brand: Any) -> Any:
        from caredesk.connectors.actions import do_create_installation
        from caredesk.connectors.builtin.replay.brands import DEMO_BRANDS

        info = next(iter(DEMO_BRANDS.values()))
        return do_create_installation(brand, "replay", f"{info.name} replay",
                                      {"brand": info.key, "speed": 1.0, "loop": False, "publish_log": str(self.log)},
                                      own_account_ids=list(info.account_ids), own_handles=[info.handle])

    def publications(self, idempotency_key: str, marker: str) -> int:
        from caredesk.connectors.builtin.replay.provider import read_publish_log

        return sum(1 for entry in read_publish_log(str(self.log)) if entry["key"] == idempotency_key)

    def create_calls(self) -> int:
        from caredesk.connectors.builtin.replay.provider import read_publish_log

        return len(read_publish_log(str(self.log)))

    def vary(self, rng: random.Random) -> None:
        pass

    def settle(self) -> None:
        pass


CREATE = "com.atproto.repo.createRecord"


def _quiet(request: object, client_address: object) -> None:
    pass


@contextmanager
def platform(key: str) -> Iterator[Platform]:
    if key == "mastodon":
        from fake_mastodon import FakeMastodon

        with FakeMastodon() as fake:
            yield MastodonPlatform(fake)
    elif key == "bluesky":
        from bluesky_servers import Pds, running_pds

        with running_pds(Pds()) as server:
            yield BlueskyPlatform(server)
    elif key == "x":
        from fake_x import FakeX

        with FakeX() as fake:
            yield XPlatform(fake)
    elif key == "replay":
        yield ReplayPlatform(Path(tempfile.mkdtemp(prefix="caredesk-replay-platform-")))
    else:
        raise SystemExit(f"unknown provider {key!r}: mastodon, bluesky, x or replay")


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "caredesk", "worker", "--concurrency", "4"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _wait_until_sending(replies: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not replies.filter(state="sending").exists():
        time.sleep(0.01)


def run_provider(key: str, kills: int, replies: int, seed: int, env: dict[str, str],
                 wait_s: float = 60, say: Callable[[str], None] = print) -> Outcome:
    """Queue ``replies`` replies on ``key``'s fake platform and send them with a worker killed ``kills`` times;
    recover, and count against the platform. The worker uses the database of ``env['DATABASE_URL']``, which must
    be the one Django is connected to here (the replies are committed for it to see)."""
    from asgiref.sync import async_to_sync
    from django.db import transaction
    from procrastinate.contrib.django import app

    from caredesk.accounts.actions import do_create_brand, do_create_user
    from caredesk.cases.models import Case, Post
    from caredesk.connectors.actions import do_set_enabled
    from caredesk.connectors.tasks import poll_installation
    from caredesk.jobs.worker import run_worker
    from caredesk.outbox.actions import do_queue_reply
    from caredesk.outbox.models import Reply
    from caredesk.outbox.tasks import retry_stalled, sweep_replies_now

    rng = random.Random(seed)
    outcome = Outcome(key)
    log = Path(env.get("CAREDESK_DATA_DIR") or tempfile.mkdtemp(prefix="caredesk-reply-fault-")) / f"{key}.log"
    started = time.monotonic()
    with platform(key) as fake:
        brand = do_create_brand(f"Reply fault {key} {seed}", f"fault-{key}-{seed}")
        agent = do_create_user(f"fault-agent-{key}-{seed}", "bench-password-1", is_site_owner=True)
        installation = fake.installation(brand)
        # The replay plays its script in time: an hour ahead, all of it is out.
        poll_installation(installation.pk, datetime.now(UTC) + timedelta(hours=1 if key == "replay" else 0))
        do_set_enabled(installation, False)  # no polls from the worker: only the replies are under test
        posts = list(Post.objects.filter(installation=installation, direction="inbound", case__isnull=False))
        if len(posts) != POSTS and not (key == "replay" and posts):
            raise SystemExit(f"{key}: {len(posts)} customer posts polled, {POSTS} expected")
        markers: dict[int, str] = {}
        stop = threading.Event()
        # The replies are queued over the whole kill window (0.85 s between kills on average), so that kills
        # find sends in flight rather than an outbox already empty.
        spacing = kills * 0.85 / max(replies, 1)

        def queue_replies() -> None:
            from django.db import close_old_connections

            try:
                for n in range(replies):
                    post = posts[n % len(posts)]
                    marker = f"[{key} reply {n}]"
                    with transaction.atomic():
                        case = Case.objects.select_for_update().get(posts=post)
                        reply = do_queue_reply(case, post, f"Sorry about that, we are on it {marker}", agent,
                                               datetime.now(UTC))
                    markers[reply.pk] = marker
                    if stop.wait(spacing):
                        break
            finally:
                close_old_connections()

        def vary() -> None:
            while not stop.is_set():
                fake.vary(rng)
                stop.wait(0.15)

        threads = [threading.Thread(target=queue_replies, daemon=True), threading.Thread(target=vary, daemon=True)]
        mine = Reply.objects.filter(installation=installation)
        cut: set[int] = set()
        worker = _start_worker(env, log)
        for thread in threads:
            thread.start()
        try:
            while outcome.kills < kills:
                # Once the new worker is sending (it takes a second or two to start: a kill before that would
                # cut nothing), at a random moment within a creation's 20-100 ms, so most kills cut a send.
                _wait_until_sending(mine, seconds=15)
                time.sleep(rng.uniform(0.0, 0.08))
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                outcome.kills += 1
                cut |= set(mine.filter(state="sending").values_list("pk", flat=True))
                worker = _start_worker(env, log)
            threads[0].join()
            # Let the last worker send what it can; what waits for a periodic job (a sweep each minute) is left
            # to the recovery below: stop once nothing has moved for a few seconds.
            deadline = time.monotonic() + wait_s
            moved_at, settled = time.monotonic(), -1
            while time.monotonic() < min(deadline, moved_at + 3 * LEASE_SECONDS):
                open_now = mine.filter(state__in=["queued", "sending"]).count()
                if not open_now:
                    break
                if open_now != settled:
                    moved_at, settled = time.monotonic(), open_now
                time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            fake.settle()
            _stop(worker)
        outcome.queued = len(markers)
        outcome.interrupted = len(cut)

        # Recovery, as the periodic jobs do it (creations still slow, no more lost answers).
        for _ in range(10):
            async_to_sync(retry_stalled)(app.job_manager, 0)
            sweep_replies_now(datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS * 2))
            run_worker(2, wait=False, install_signal_handlers=False)
            if not mine.filter(state__in=["queued", "sending"]).exists():
                break

        for pk, idempotency_key, state in mine.values_list("pk", "idempotency_key", "state"):
            times = fake.publications(idempotency_key, markers[pk])
            outcome.published += times > 0
            outcome.twice += times > 1
            outcome.sent += state == "sent"
            outcome.failed += state == "failed"
            outcome.stuck += state in ("queued", "sending")
            if state == "unknown":
                outcome.unknown += 1
                outcome.unknown_published += times > 0
            elif (state == "sent") != (times > 0):
                outcome.lost += 1
                say(f"  {key}: reply {pk} ({markers[pk]}) is {state} and was published {times} times")
        outcome.answers_lost = fake.answers_lost
        outcome.create_calls = fake.create_calls()
    outcome.seconds = time.monotonic() - started
    return outcome


COLUMNS = (  # heading, attribute; * marks the figures that must be 0
    ("provider", "provider"), ("kills", "kills"), ("cut mid-send", "interrupted"), ("answers lost", "answers_lost"),
    ("create calls", "create_calls"), ("queued", "queued"), ("sent", "sent"), ("published", "published"),
    ("twice*", "twice"), ("lost*", "lost"), ("stuck*", "stuck"), ("unknown", "unknown"),
    ("unknown&published", "unknown_published"), ("failed", "failed"), ("seconds", "seconds"),
)


def table(outcomes: list[Outcome]) -> str:
    rows = [[heading for heading, _ in COLUMNS]]
    for outcome in outcomes:
        values = [getattr(outcome, name) for _, name in COLUMNS]
        rows.append([f"{v:.0f}" if isinstance(v, float) else str(v) for v in values])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    return "\n".join(lines) + "\n(* must be 0)"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--replies", type=int, default=60)
    parser.add_argument("--providers", default="mastodon,bluesky,x,replay")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()

    os.environ["CAREDESK_REPLY_LEASE_SECONDS"] = str(LEASE_SECONDS)
    os.environ["CAREDESK_POLL_INTERVAL"] = "0.5"
    sys.path.insert(0, str(ROOT / "bench"))
    import _db

    _db.BENCH_DB = "caredesk_bench_reply_fault"  # its own: other benchmarks drop and recreate theirs meanwhile
    url = _db.setup_database()
    work = Path(tempfile.mkdtemp(prefix="caredesk-reply-fault-"))
    env = {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(work)}
    started = time.monotonic()
    outcomes = [run_provider(key, args.kills, args.replies, args.seed, env) for key in args.providers.split(",")]
    print(table(outcomes))
    print(f"wall time {time.monotonic() - started:.0f} s; worker logs in {work}")
    ok = all(o.ok for o in outcomes)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
