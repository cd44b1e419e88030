"""The core of bench/x_cost_month.py: one simulated UTC day of a brand on X, read through the real
:class:`XProvider` from the fake X server of its tests, and the bill of what it read.

Each rung drives the provider the way the runtime does: the webhook rung hands every Activity API delivery to
``verify`` and ``parse``; the stream rung runs ``stream()`` over the fake's two streams (scripted with the day's
lines, written as fast as the socket takes them); the polling rungs make a new provider per poll (the worker's
``get_provider``) and call ``fetch(cursor, now)`` with a simulated clock, the fake serving only the posts that
have arrived by then. What comes back in ``FetchResult.usage`` is priced by the ledger's own
``Meter(DEFAULT_X_PRICES)``, the daily de-duplication included; requests are counted on the fake server.

Post ids are snowflakes (X's epoch, milliseconds in the high bits), so an id tells when its post arrived: the
stream stamps its usage with the wall clock, and the benchmark restamps each event with the arrival of its newest
post (the same UTC day either way). Used by bench/x_cost_month.py and tests/connectors/x/test_x_cost_bench.py."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "connectors" / "x"))  # the fake X server of the provider's tests

from fake_x import ACCESS, BEARER, CLIENT_ID, OUR_HANDLE, OUR_ID, REFRESH, FakeX, line  # noqa: E402

from caredesk.connectors.base import FetchResult, WebhookRequest  # noqa: E402
from caredesk.connectors.builtin.x import XConfig, XProvider  # noqa: E402
from caredesk.connectors.builtin.x.search import build_queries, query_key, wanted_rules  # noqa: E402
from caredesk.connectors.builtin.x.webhook import SIGNATURE_HEADER, digest  # noqa: E402
from caredesk.connectors.costs.prices import (  # noqa: E402
    DEFAULT_X_PRICES,
    POST_READS,
    Meter,
    Operation,
    Seen,
    UsageEvent,
)

X_EPOCH_MS = 1288834974657
KEYWORD = "acme"
CONSUMER_SECRET = "consumer-secret"
WEBHOOK_URL = "https://desk.example.com/hooks/7"
STREAM_TIMEOUT_S = 300.0


def snowflake(at: datetime, sequence: int) -> str:
    return str(((int(at.timestamp() * 1000) - X_EPOCH_MS) << 22) | (sequence & 0x3FFFFF))


def arrival(tweet_id: str) -> datetime:
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + X_EPOCH_MS) / 1000, UTC)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass
class DayPlan:
    """The posts of one UTC day, oldest first: ``mentions`` address the brand, ``keywords`` only match its
    keyword; ``users`` are their authors."""

    day: date
    mentions: list[dict[str, Any]]
    keywords: list[dict[str, Any]]
    users: dict[str, dict[str, Any]]
    # The previous day's latest posts, already read: what a read without a cursor finds again.
    before_mentions: list[dict[str, Any]] = field(default_factory=list)
    before_keywords: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return day_start(self.day)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    def ids(self, posts: Iterable[dict[str, Any]]) -> set[str]:
        return {p["id"] for p in posts}

    def arrived(self, at: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The mentions and keyword matches (yesterday's last ones included) arrived by ``at``."""
        return ([*self.before_mentions, *(p for p in self.mentions if arrival(p["id"]) <= at)],
                [*self.before_keywords, *(p for p in self.keywords if arrival(p["id"]) <= at)])

    def cursor(self, config: XConfig, at: datetime | None = None) -> dict[str, Any]:
        """Where the reads up to ``at`` (default: yesterday's) ended: the newest mention and keyword match read."""
        mentions, keywords = self.arrived(at or self.start)
        floor = mentions[-1]["id"] if mentions else snowflake(self.start, 0)
        search = keywords[-1]["id"] if keywords else snowflake(self.start, 0)
        return {"since_id": floor, "search": {
            query_key(q): {"since_id": search} for q in build_queries(config, OUR_ID, config.query_length)}}


def plan_day(day: date, mentions: int, keywords: int, *, authors: int = 5000, seed: int = 10,
             before: int = 100) -> DayPlan:
    """``mentions`` + ``keywords`` posts spread evenly over ``day`` (a little jitter), each by one of ``authors``
    users drawn at random; and the previous day's last ``before`` of each kind, at the same rate."""
    rng = random.Random(seed)
    start = day_start(day)
    users = {str(10_000_000 + i): {"id": str(10_000_000 + i), "username": f"customer{i}", "name": f"Customer {i}",
                                   "public_metrics": {"followers_count": rng.randint(0, 5000)}, "verified": False}
             for i in range(authors)}
    author_ids = list(users)
    brand = {"start": 0, "end": len(OUR_HANDLE) + 1, "username": OUR_HANDLE, "id": OUR_ID}

    def posts(count: int, kind: int, first: int = 0, per_day: int = 0) -> list[tuple[datetime, int, str]]:
        step = 86_400 / max(per_day or count, 1)
        return [(start + timedelta(seconds=min(86_399.999, (i + rng.random()) * step)), kind, author)
                for i, author in zip(range(first, first + count), rng.choices(author_ids, k=count), strict=True)]

    earlier = sorted(posts(before, 2, -before, mentions) + posts(before, 3, -before, keywords))
    timed = earlier + sorted(posts(mentions, 0) + posts(keywords, 1))
    made: tuple[list[dict[str, Any]], ...] = ([], [], [], [])
    for n, (at, kind, author) in enumerate(timed):
        tweet_id = snowflake(at, n)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
        body: dict[str, Any] = {"id": tweet_id, "author_id": author, "conversation_id": tweet_id, "created_at": stamp,
                                "edit_history_tweet_ids": [tweet_id], "lang": "en"}
        if kind in (0, 2):
            body["text"] = f"@{OUR_HANDLE} my order {n} has not arrived"
            body["entities"] = {"mentions": [brand]}
        else:
            body["text"] = f"the {KEYWORD} phone I bought broke again ({n})"
        made[kind].append(body)
    return DayPlan(day, made[0], made[1], users, made[2], made[3])


@dataclass
class DayRun:
    """What one rung did in the day: the requests caredesk made (path → count), the usage the provider reported,
    and the posts it handed to the desk."""

    requests: Counter[str] = field(default_factory=Counter)
    usage: list[UsageEvent] = field(default_factory=list)
    posts: set[str] = field(default_factory=set)
    authors: set[str] = field(default_factory=set)
    polls: int = 0
    seconds: float = 0.0
    last_poll: datetime | None = None

    def take(self, result: FetchResult) -> None:
        self.usage.extend(result.usage)
        for post in result.posts:
            self.posts.add(post.external_id)
            self.authors.add(post.author.external_id)

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())


@dataclass(frozen=True)
class Bill:
    post_reads: int  # billed reads that count toward the monthly cap (post reads and owned reads)
    reads: dict[Operation, int]  # billed, by operation
    deduped: int
    cost: Decimal
    saved: Decimal  # what the de-duplicated reads would have cost


def bill(events: Sequence[UsageEvent], seen: Seen | None = None) -> Bill:
    """The events priced by the ledger's meter with X's defaults: one meter, so each read is billed once a UTC
    day; ``seen``: reads billed earlier that day."""
    meter = Meter(DEFAULT_X_PRICES, set(seen or ()))
    reads: Counter[Operation] = Counter()
    deduped = 0
    cost = saved = Decimal(0)
    for line_ in meter.bill(sorted(events, key=lambda e: e.at)):
        reads[line_.operation] += line_.billed
        deduped += line_.deduped
        cost += line_.cost
        saved += DEFAULT_X_PRICES.price(line_.operation) * line_.deduped
    return Bill(sum(n for op, n in reads.items() if op in POST_READS), dict(reads), deduped, cost, saved)


def _config(**changes: Any) -> XConfig:
    return XConfig.model_validate({"api": "http://127.0.0.1", "user_id": OUR_ID, "keywords": [KEYWORD], **changes})


def _credentials() -> dict[str, str]:
    return {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID, "bearer_token": BEARER,
            "consumer_secret": CONSUMER_SECRET}


def _count(fake: FakeX, run: DayRun, skip: int = 0) -> None:
    for request in fake.state.requests[skip:]:
        run.requests[f"{request.method} {request.path}"] += 1


def _server(plan: DayPlan, at: datetime | None = None) -> FakeX:
    """The fake X with the users and the posts arrived by ``at`` (default: yesterday's last ones)."""
    fake = FakeX()
    fake.state.users.update(plan.users)
    mentions, keywords = plan.arrived(at or plan.start)
    fake.state.mentions.extend(mentions)
    fake.state.search.extend(keywords)
    return fake


def billed_before(plan: DayPlan, at: datetime) -> Seen:
    """The reads a poller that misses nothing had billed on the day before ``at`` (what a window from ``at`` is
    billed against): every mention arrived as an owned read, every keyword match as a post read, and yesterday's
    latest ones, which a poll without a cursor re-reads at the day's first poll."""
    mentions, keywords = plan.arrived(at)
    return {(plan.day, op.value, p["id"]) for op, posts in ((Operation.OWNED_READ, mentions),
                                                            (Operation.POST_READ, keywords)) for p in posts}


# -- webhook ----------------------------------------------------------------------------------------------------


def delivery(tweet: dict[str, Any], author: dict[str, Any]) -> bytes:
    """One Activity API ``post.mention.create`` event as X posts it to the webhook."""
    return json.dumps({"data": {"event_uuid": tweet["id"], "filter": {"user_id": OUR_ID},
                                "event_type": "post.mention.create", "tag": "caredesk", "payload": tweet,
                                "includes": {"users": [author]}}}).encode()


def run_webhook(plan: DayPlan) -> DayRun:
    """Every mention delivered to ``/hooks/<id>``: the signature checked (``verify``), then ``parse`` at the
    delivery's time. X pushes, so caredesk makes no request (the subscriptions were made at setup)."""
    run = DayRun()
    began = time.perf_counter()
    provider = XProvider(_config(webhook_url=WEBHOOK_URL), _credentials(), None)
    for tweet in plan.mentions:
        body = delivery(tweet, plan.users[tweet["author_id"]])
        request = WebhookRequest("POST", {SIGNATURE_HEADER: digest(CONSUMER_SECRET, body)}, {}, body)
        if provider.verify(request) is not None:
            raise AssertionError("a delivery was answered as a CRC check")
        run.take(provider.parse(body, arrival(tweet["id"])))
    run.seconds = time.perf_counter() - began
    return run


# -- streams ----------------------------------------------------------------------------------------------------


def _restamped(events: Iterable[UsageEvent], plan: DayPlan) -> list[UsageEvent]:
    """The stream's wall-clock stamps → the arrival of each event's newest post (the connection's start for an
    event without posts), kept inside the simulated day."""
    last = plan.end - timedelta(microseconds=1)
    out = []
    for event in events:
        at = max((arrival(i) for i in event.resource_ids if i.isdigit()), default=plan.start)
        out.append(UsageEvent(event.operation, min(max(at, plan.start), last), event.resource_ids, event.units))
    return out


def run_stream(plan: DayPlan, *, activity: bool = True, user_id_in_config: bool = True,
               keep_cursor: bool = True) -> DayRun:
    """One stream connection for the day (``stream()``: subscriptions listed, rules synced, both streams opened,
    the mentions catch-up from the cursor, then the events). ``activity``: mentions come as Activity API events;
    otherwise the Activity API stream stays silent and the mentions come as filtered-stream matches of the
    brand's rule. Read until every post of the day was delivered. ``user_id_in_config``, ``keep_cursor``: as for
    :func:`run_poll` (the connection asks /2/users/me; the catch-up starts from an empty cursor)."""
    fake = _server(plan)
    config = _config()
    prefix = f"caredesk:{OUR_ID}:"
    tag = next(iter(wanted_rules(build_queries(config, OUR_ID, config.query_length), prefix)))

    def matched(tweet: dict[str, Any]) -> bytes:
        return line({"data": tweet, "includes": {"users": [plan.users[tweet["author_id"]]]},
                     "matching_rules": [{"id": "1", "tag": tag}]})

    def event(tweet: dict[str, Any]) -> bytes:
        return line(json.loads(delivery(tweet, plan.users[tweet["author_id"]])))

    mentions = [event(t) for t in plan.mentions] if activity else []
    keywords = [matched(t) for t in plan.keywords] + ([] if activity else [matched(t) for t in plan.mentions])
    hold = 600.0  # the connection stays open (keep-alive silence) until the benchmark has everything
    fake.state.streams = {"/2/activity/stream": [[b"".join(mentions), hold]],
                          "/2/tweets/search/stream": [[b"".join(keywords), hold]]}
    expected = plan.ids(plan.mentions) | plan.ids(plan.keywords)
    run = DayRun()
    with fake:
        config = _config(api=fake.url)
        # The whole cursor: the connection catches up the mentions and the keywords' recent search from it.
        cursor = plan.cursor(config) if keep_cursor else {}
        with httpx.Client(timeout=10) as http:  # setup, not part of the day: subscriptions and rules exist
            setup = XProvider(config, _credentials(), http)
            setup.ensure_subscriptions(plan.start)
            setup.ensure_rules(plan.start)
        skip = len(fake.state.requests)
        began = time.perf_counter()
        if not user_id_in_config:
            config = _config(api=fake.url, user_id="")
        asyncio.run(_consume(XProvider(config, _credentials(), None), cursor, expected, run))
        run.seconds = time.perf_counter() - began
        _count(fake, run, skip)
    run.usage = _restamped(run.usage, plan)
    return run


async def _consume(provider: XProvider, cursor: dict[str, Any], expected: set[str], run: DayRun) -> None:
    seen: set[str] = set()
    deadline = time.monotonic() + STREAM_TIMEOUT_S
    async with httpx.AsyncClient(timeout=30) as http:
        batches = provider.stream(cursor, http)
        try:
            async for result in batches:
                run.take(result)
                seen.update(i for e in result.usage if e.operation == Operation.POST_READ for i in e.resource_ids)
                if expected <= seen:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the stream delivered {len(seen)} of {len(expected)} posts in time")
            raise AssertionError(f"the stream ended after {len(seen)} of {len(expected)} posts")
        finally:
            await batches.aclose()  # type: ignore[attr-defined]


# -- polling ----------------------------------------------------------------------------------------------------


def run_poll(plan: DayPlan, every: timedelta, *, user_id_in_config: bool = True, keep_cursor: bool = True,
             since: datetime | None = None, until: datetime | None = None) -> DayRun:
    """A poll at each ``every`` of the day (the last one at midnight, reading the day's last posts), each by a
    new provider as the worker makes one per poll: ``fetch(cursor, now)``, the fake serving the posts arrived by
    ``now``. ``user_id_in_config=False``: the brand's user id not kept at setup (each poll asks /2/users/me);
    ``keep_cursor=False``: every poll starts from an empty cursor (the latest page) instead of ``since_id``.
    ``since``, ``until``: a window of the day only (the reads before ``since`` done, the cursor after them)."""
    start = since or plan.start
    fake = _server(plan, start)
    run = DayRun()
    cursor = plan.cursor(_config(), start) if keep_cursor else {}
    mentions, keywords = plan.mentions, plan.keywords
    m = sum(1 for p in mentions if arrival(p["id"]) <= start)
    k = sum(1 for p in keywords if arrival(p["id"]) <= start)
    with fake, httpx.Client(timeout=10) as http:
        config = _config(api=fake.url, user_id=OUR_ID if user_id_in_config else "")
        began = time.perf_counter()
        now = start + every
        stop = min(until or plan.end, plan.end)
        while now <= stop:
            while m < len(mentions) and arrival(mentions[m]["id"]) <= now:
                fake.state.mentions.append(mentions[m])
                m += 1
            while k < len(keywords) and arrival(keywords[k]["id"]) <= now:
                fake.state.search.append(keywords[k])
                k += 1
            result = XProvider(config, _credentials(), http).fetch(cursor, now)
            run.take(result)
            run.polls += 1
            cursor = dict(result.cursor) if keep_cursor else {}
            run.last_poll = now
            now += every
        run.seconds = time.perf_counter() - began
        _count(fake, run)
    # The midnight poll reads the day's last posts on the next UTC day. Its re-reads of earlier posts (without a
    # cursor) are the next day's own cost, which this day already counts once: at its first poll, re-reading
    # yesterday's latest page. So it is billed with the day, and each of the day's posts once.
    last = plan.end - timedelta(microseconds=1)
    run.usage = [UsageEvent(e.operation, min(e.at, last), e.resource_ids, e.units) for e in run.usage]
    return run


def missed(plan: DayPlan, run: DayRun, since: datetime | None = None) -> int:
    """Posts of the day that arrived after ``since`` and by the run's last poll but never reached the desk."""
    last, first = run.last_poll or plan.end, since or plan.start
    arrived = {p["id"] for p in (*plan.mentions, *plan.keywords) if first < arrival(p["id"]) <= last}
    return len(arrived - run.posts)


def user_lookups_avoided(plan: DayPlan, run: DayRun) -> Bill:
    """An estimate: what separate user lookups of the authors of the posts read would cost (one user read per
    distinct author a day, after the de-duplication), which ``expansions=author_id`` avoids."""
    return bill([UsageEvent(Operation.USER_READ, plan.start, tuple(sorted(run.authors)))])
