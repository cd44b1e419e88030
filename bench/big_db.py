"""The large database of issue 11: a year of a big brand's mentions, built reproducibly by COPY.

    python bench/big_db.py [--scale 1.0] [--seed 11] [--cases N --posts N --activities N]

Defaults are the issue's sizes: 1,000,000 cases, 4,000,000 posts and 5,900,000 activities (``--scale 0.01`` for a
quick run), into its own database ``caredesk_bench_big``, migrated by Django first. Three brands (80 / 15 / 5 % of
the cases), one installation each, agents and a supervisor with memberships, an API token (printed), one author and
customer per 2.5 cases. Texts come from a small template generator; each distinct text is triaged once by the real
triage and its result stored as the pipeline stores it (``TriageResult.as_dict``), and a case takes its labels and
subject from its first post, as ``do_receive_posts`` does.

The big tables' indexes and constraints (all but primary keys) are dropped before loading and recreated, from the
definitions the migrations made, afterwards: foreign keys are validated then, so the data respects every one. Then
ANALYZE. Prints progress and the time of each stage.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

BIG_DB = "caredesk_bench_big"
BIG_TABLES = ("cases_customer", "cases_author", "cases_case", "cases_post", "cases_activity")
AGENT_PASSWORD = "bench-agent-password-11"
BRANDS = (("Nimbus Cable", "nimbus", 0.80, "NimbusCare"), ("Skyway Air", "skyway", 0.15, "SkywayHelp"),
          ("Volt Mobile", "volt", 0.05, "VoltSupport"))
PLATFORM = "replay"
END = datetime(2026, 12, 1, tzinfo=UTC)  # fixed, so a build is the same whatever day it runs
YEAR = timedelta(days=365)
RECENT = timedelta(days=7)
CHUNK = 20_000  # cases per COPY round
NULL = "\\N"  # COPY's text format

_PRODUCTS = ("internet", "wifi", "router", "TV box", "bill", "account", "app", "modem", "flight", "booking",
             "bag", "refund", "phone plan", "SIM", "data", "signal", "seat", "upgrade", "payment", "contract")
_PROBLEMS = ("has been down", "keeps dropping", "is not working", "was charged twice", "is so slow",
             "got cancelled", "is missing", "stopped working", "shows an error", "was never delivered",
             "is broken again", "has been delayed")
_TIMES = ("since this morning", "for three days", "all week", "since yesterday", "again tonight", "for an hour",
          "since Monday", "every evening")
_ASKS = ("Can someone help?", "Please fix this.", "What is going on?", "I want a refund.", "DM me please.",
         "This is the third time I ask.", "Anyone there?", "Thanks in advance!", "Really disappointed.",
         "Is there an outage?", "I will cancel if this goes on.", "",
         "I work from home and I am losing money, this is unacceptable!!",
         "Stranded at the airport with two kids, URGENT.", "Third outage this week, I am furious.")
_PRAISE = ("Thanks for the quick fix, great service!", "Love the new app, well done.", "All good now, thank you!",
           "Best support team, cheers.", "ok thanks")
_REPLIES = ("Sorry about that! Could you DM us your account number so we can look into it?",
            "Thanks for reaching out. We are aware of an outage in your area and working on it.",
            "We have refunded the duplicate charge; it shows within 3 to 5 days.",
            "Could you try restarting the device and tell us whether it helps?",
            "Glad it is sorted! Anything else, just ask.", "We have escalated this to our technical team.")


@dataclass(frozen=True)
class Sizes:
    cases: int = 1_000_000
    posts: int = 4_000_000
    activities: int = 5_900_000

    def __post_init__(self) -> None:
        if self.cases < 1 or self.posts < self.cases:
            raise ValueError("need at least one case and one post per case")
        if self.activities < self.cases + self.posts:
            raise ValueError("need at least one activity per case and per post (case_created, post_received)")

    @property
    def authors(self) -> int:
        return max(len(BRANDS), self.cases * 2 // 5)

    def scaled(self, scale: float) -> Sizes:
        return Sizes(max(1, round(self.cases * scale)), max(1, round(self.posts * scale)),
                     max(1, round(self.activities * scale)))


@dataclass
class Seeded:
    """What was created through the ORM, for the benchmarks to log in with."""

    brand_ids: list[int]
    installation_ids: list[int]
    agent_ids: dict[int, list[int]]  # brand id -> agents' user ids
    usernames: dict[int, str]
    agent_username: str
    api_token: str


@dataclass(frozen=True)
class Inbound:
    text: str
    triage_json: str  # COPY-escaped
    subject: str
    topic: str
    sentiment: str
    urgency: float
    priority: int
    needs_reply: bool


def _copy_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def inbound_texts(rng: random.Random, count: int) -> list[str]:
    """Distinct customer posts from the templates (about one in twelve is praise)."""
    seen: dict[str, None] = {}
    while len(seen) < count:
        if rng.random() < 0.08:
            text = rng.choice(_PRAISE) + f" @{{brand}} #{rng.randrange(1000)}"
        else:
            text = (f"@{{brand}} my {rng.choice(_PRODUCTS)} {rng.choice(_PROBLEMS)} {rng.choice(_TIMES)}. "
                    f"{rng.choice(_ASKS)}").strip()
        if rng.random() < 0.05:
            text += f" call me on 07{rng.randrange(10**8, 10**9)}"  # some PII, masked in subjects as triage finds it
        seen[text] = None
    return list(seen)


def triaged_pool(rng: random.Random, count: int, handle: str) -> list[Inbound]:
    """Each distinct text triaged once by the real triage, with the subject the pipeline would give it."""
    from caredesk.cases.actions import _subject  # the pipeline's own subject rule (masks PII)
    from caredesk.triage import classify
    from caredesk.triage.types import PostSignals

    texts = [t.replace("{brand}", handle) for t in inbound_texts(rng, count)]
    # Repeat contacts and big accounts raise urgency, as they do for real posts.
    results = classify([PostSignals(text=t, brand_handles=(handle,), prior_contacts=rng.choice((0, 0, 0, 1, 2, 5)),
                                    author_followers=int(rng.paretovariate(1.1) * 50)) for t in texts])
    pool = []
    for text, r in zip(texts, results, strict=True):
        pool.append(Inbound(
            text=_copy_escape(text), triage_json=_copy_escape(json.dumps(r.as_dict(), separators=(",", ":"))),
            subject=_copy_escape(_subject(text, r)), topic=str(r.topic.value), sentiment=str(r.sentiment.value),
            urgency=float(r.urgency.value), priority=int(r.priority), needs_reply=bool(r.needs_reply.value),
        ))
    return pool


def seed_accounts(agents_per_brand: tuple[int, ...] = (8, 3, 2)) -> Seeded:
    """Brands, installations, agents (``agent`` is the big brand's), a supervisor and a token, via the actions."""
    from caredesk.accounts.actions import do_create_api_token, do_create_brand, do_create_user
    from caredesk.connectors.actions import do_create_installation

    brand_ids: list[int] = []
    installation_ids: list[int] = []
    agent_ids: dict[int, list[int]] = {}
    usernames: dict[int, str] = {}
    brands = [do_create_brand(name, slug) for name, slug, _, _ in BRANDS]
    # The measuring agent works every brand's cases (a national team), so it sees all the cases, as the issue's
    # figures over 1,000,000 cases (offset=900000) need.
    first_agent = do_create_user("agent", AGENT_PASSWORD, memberships=[(b, "agent") for b in brands])
    for brand, (_, slug, _, handle), agents in zip(brands, BRANDS, agents_per_brand, strict=True):
        installation = do_create_installation(brand, "replay", "bench", {"brand": "nimbus"},
                                              own_account_ids=[f"own-{slug}"], own_handles=[handle])
        brand_ids.append(brand.pk)
        installation_ids.append(installation.pk)
        users = [first_agent] + [do_create_user(f"{slug}-agent{i}", AGENT_PASSWORD, memberships=[(brand, "agent")])
                                 for i in range(1, agents)]
        agent_ids[brand.pk] = [u.pk for u in users]
        usernames.update((u.pk, u.get_username()) for u in users)
        do_create_user(f"{slug}-supervisor", AGENT_PASSWORD, memberships=[(brand, "supervisor")])
    return Seeded(brand_ids, installation_ids, agent_ids, usernames, first_agent.get_username(),
                  do_create_api_token(first_agent, "bench"))


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _constraints_and_indexes(cursor: Any) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(table, name, definition) of every constraint but primary keys, and (name, definition) of every index that
    backs no constraint, on the big tables."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
        "WHERE conrelid = ANY(%s::regclass[]) AND contype <> 'p' ORDER BY contype = 'f', conname",
        [list(BIG_TABLES)],
    )
    constraints = [(t, n, d) for t, n, d, _ in cursor.fetchall()]
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = ANY(%s::regclass[]) "
        "AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conindid <> 0)",
        [list(BIG_TABLES)],
    )
    return constraints, list(cursor.fetchall())


class _Ids:
    def __init__(self, cursor: Any) -> None:
        self.next: dict[str, int] = {}
        self.author_base = self.customer_base = 0  # set when the people are loaded
        for table in BIG_TABLES:
            cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")  # noqa: S608 (our constant names)
            self.next[table] = cursor.fetchone()[0]

    def take(self, table: str, n: int = 1) -> int:
        first = self.next[table]
        self.next[table] = first + n
        return first


def _ts(at: datetime) -> str:
    return at.isoformat()


def _split(total: int, parts: int, rng: random.Random, skew: float) -> list[int]:
    """``total`` spread over ``parts`` buckets, each at least 1 when total allows; ``skew`` > 1 makes a long tail
    (a few long threads, many one-post cases)."""
    counts = [1] * parts
    extra = total - parts
    weights = [rng.random() ** skew for _ in range(parts)]
    scale = extra / (sum(weights) or 1)
    for i, w in enumerate(weights):
        counts[i] += int(w * scale)
    for i in rng.sample(range(parts), min(parts, total - sum(counts))):
        counts[i] += 1
    i = 0
    while sum(counts) < total:  # rounding in a tiny build
        counts[i % parts] += 1
        i += 1
    return counts


def _status(rng: random.Random, age: timedelta) -> str:
    r = rng.random()
    if age < RECENT:
        return "new" if r < 0.40 else "open" if r < 0.70 else "pending" if r < 0.90 else "resolved"
    return "resolved" if r < 0.92 else "pending" if r < 0.95 else "open" if r < 0.98 else "new"


def _chunks(sizes: Sizes, rng: random.Random) -> Iterator[tuple[int, list[int], int]]:
    """(first case index, posts per case, extra activities in this chunk) for each chunk of cases."""
    posts = _split(sizes.posts, sizes.cases, rng, 3.0)
    extra_total = sizes.activities - sizes.cases - sizes.posts
    for start in range(0, sizes.cases, CHUNK):
        stop = min(sizes.cases, start + CHUNK)
        extra = extra_total * stop // sizes.cases - extra_total * start // sizes.cases
        yield start, posts[start:stop], extra


def load(connection: Any, sizes: Sizes, seeded: Seeded, seed: int = 11,
         log: Callable[[str], None] = print, rebuild: bool = True) -> dict[str, float]:
    """COPY the cases, posts, activities, authors and customers into the database behind Django's ``connection``.
    Returns the seconds each stage took."""
    rng = random.Random(seed)
    timings: dict[str, float] = {}
    t = time.monotonic()
    pools = [triaged_pool(random.Random(seed + i), 3_000 if sizes.cases > 10_000 else 200, handle)
             for i, (_, _, _, handle) in enumerate(BRANDS)]
    timings["triage of the text pool"] = time.monotonic() - t
    with connection.cursor() as cursor:
        pg = cursor.connection  # psycopg 3
        ids = _Ids(cursor)
        constraints, indexes = _constraints_and_indexes(cursor)
        if rebuild:
            # Inside a transaction (a test) the accounts just seeded leave deferred FK checks pending, which forbid
            # altering the tables they reference: run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table, name, _ in constraints:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
        t = time.monotonic()
        _load_people(pg, ids, sizes, seeded)
        timings["authors and customers"] = time.monotonic() - t
        t = time.monotonic()
        done = 0
        for start, posts_per_case, extra in _chunks(sizes, rng):
            _load_chunk(pg, ids, rng, sizes, seeded, pools, start, posts_per_case, extra)
            done += len(posts_per_case)
            if done % (CHUNK * 5) == 0 or done == sizes.cases:
                log(f"  {done:>9,} / {sizes.cases:,} cases loaded ({time.monotonic() - t:.0f} s)")
        timings["COPY of cases, posts, activities"] = time.monotonic() - t
        t = time.monotonic()
        if rebuild:
            cursor.execute("SET maintenance_work_mem = '512MB'")
            steps = [(f"index {name}", definition) for name, definition in indexes]
            steps += [(f"constraint {name}", f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
                      for table, name, definition in constraints]
            for what, statement in steps:
                began = time.monotonic()
                cursor.execute(statement)
                log(f"  {what} ({time.monotonic() - began:.1f} s)")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's foreign keys are all INITIALLY DEFERRED
        for table in BIG_TABLES:
            sequence = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
            cursor.execute(sequence)  # table names: our constants
        timings["indexes and constraints"] = time.monotonic() - t
    t = time.monotonic()
    with connection.cursor() as cursor:
        for table in BIG_TABLES:
            cursor.execute(f"ANALYZE {table}")
    timings["ANALYZE"] = time.monotonic() - t
    return timings


def _brand_index(rng: random.Random) -> int:
    r = rng.random()
    acc = 0.0
    for i, (_, _, share, _) in enumerate(BRANDS):
        acc += share
        if r < acc:
            return i
    return len(BRANDS) - 1


def _author_ranges(sizes: Sizes) -> list[tuple[int, int]]:
    """Authors by brand as (first offset, count), in proportion to the brand's share; the first of each brand's
    authors is the brand's own account (its outbound posts)."""
    ranges, start = [], 0
    for i, (_, _, share, _) in enumerate(BRANDS):
        count = sizes.authors - start if i == len(BRANDS) - 1 else max(2, round(sizes.authors * share))
        ranges.append((start, count))
        start += count
    return ranges


def _load_people(pg: Any, ids: _Ids, sizes: Sizes, seeded: Seeded) -> None:
    rng = random.Random(5)
    now = _ts(END)
    first_customer = ids.customer_base = ids.take("cases_customer", sizes.authors)
    first_author = ids.author_base = ids.take("cases_author", sizes.authors)
    with pg.cursor() as cur:
        with cur.copy("COPY cases_customer (id, brand_id, display_name, external_account_id, created_at) "
                      "FROM STDIN") as copy:
            for b, (start, count) in enumerate(_author_ranges(sizes)):
                brand = seeded.brand_ids[b]
                copy.write("".join(f"{first_customer + start + k}\t{brand}\tCustomer {start + k}\t\t{now}\n"
                                   for k in range(count)))
        with cur.copy("COPY cases_author (id, brand_id, platform, external_id, handle, name, followers, verified, "
                      "customer_id, updated_at) FROM STDIN") as copy:
            for b, (start, count) in enumerate(_author_ranges(sizes)):
                brand, handle = seeded.brand_ids[b], BRANDS[b][3]
                rows = []
                for k in range(count):
                    n = start + k
                    own = k == 0
                    rows.append(f"{first_author + n}\t{brand}\t{PLATFORM}\t{f'own-{BRANDS[b][1]}' if own else f'u{n}'}"
                                f"\t{handle if own else f'user{n}'}\t{BRANDS[b][0] if own else f'User {n}'}"
                                f"\t{int(rng.paretovariate(1.2) * 40) if not own else 250000}\t{'t' if own else 'f'}"
                                f"\t{first_customer + n}\t{now}\n")
                copy.write("".join(rows))


def _load_chunk(pg: Any, ids: _Ids, rng: random.Random, sizes: Sizes, seeded: Seeded, pools: list[list[Inbound]],
                start: int, posts_per_case: list[int], extra: int) -> None:
    ranges = _author_ranges(sizes)
    author_base = ids.author_base
    n_cases = len(posts_per_case)
    first_case = ids.take("cases_case", n_cases)
    first_post = ids.take("cases_post", sum(posts_per_case))
    extras = [0] * n_cases
    for i in (rng.randrange(n_cases) for _ in range(extra)):
        extras[i] += 1
    first_activity = ids.take("cases_activity", n_cases + sum(posts_per_case) + extra)
    cases, posts, activities = [], [], []
    post_id, activity_id = first_post, first_activity
    span = YEAR / sizes.cases
    for j, n_posts in enumerate(posts_per_case):
        case_id = first_case + j
        created = END - YEAR + span * (start + j) + timedelta(seconds=rng.random() * 30)
        b = _brand_index(rng)
        brand, installation, agents = seeded.brand_ids[b], seeded.installation_ids[b], seeded.agent_ids[
            seeded.brand_ids[b]]
        a_start, a_count = ranges[b]
        author = author_base + a_start + 1 + int(rng.random() ** 2 * (a_count - 1))  # some write often
        own_author = author_base + a_start
        customer = ids.customer_base + author - author_base  # one customer per author
        status = _status(rng, END - created)
        first = rng.choice(pools[b])
        assignee = rng.choice(agents) if status != "new" and rng.random() < 0.7 else None
        # The thread: the customer's post, then our answer and theirs in turn, minutes to hours apart.
        at = created
        last_inbound = created
        first_response = None
        root_ext = f"p{post_id}"
        prev_ext = ""
        activities.append(f"{activity_id}\tcase_created\t{brand}\t{case_id}\t\\N\t"
                          f'{{"status":"new","priority":{first.priority},"topic":"{first.topic}"}}\t{_ts(created)}\n')
        activity_id += 1
        for k in range(n_posts):
            inbound = k % 2 == 0 or rng.random() < 0.3
            if k:
                at = at + timedelta(minutes=rng.expovariate(1 / 90))
            ext = f"p{post_id}"
            if inbound:
                item = first if k == 0 else rng.choice(pools[b])
                text, triage, who, direction = item.text, item.triage_json, author, "inbound"
                last_inbound = at
            else:
                text, triage, who, direction = rng.choice(_REPLIES), "{}", own_author, "outbound"
                first_response = first_response or at
            posts.append(f"{post_id}\t{installation}\t{ext}\t{who}\t{case_id}\t{direction}"
                         f"\t{'t' if rng.random() < 0.1 else 'f'}\tt\t[]\t{text}\ten\t\t{prev_ext}\t{root_ext}"
                         f'\t{_ts(at)}\t{_ts(at + timedelta(seconds=2))}\t{{"id":"{ext}"}}\t{triage}\t\\N\t\\N\n')
            activities.append(f"{activity_id}\tpost_received\t{brand}\t{case_id}\t\\N\t"
                              f'{{"post_id":{post_id},"direction":"{direction}","status":"{status}",'
                              f'"topic":"{first.topic}","sentiment":"{first.sentiment}","priority":{first.priority}}}'
                              f"\t{_ts(at)}\n")
            activity_id += 1
            post_id += 1
            prev_ext = ext
        for _ in range(extras[j]):
            at = at + timedelta(minutes=rng.expovariate(1 / 30))
            actor = rng.choice(agents)
            if status == "resolved" and rng.random() < 0.6:
                data = '{"status":"resolved","previous":"open","reason":"changed by an agent"}'
                kind = "case_status"
            elif assignee is not None:
                data = f'{{"assignee_id":{assignee},"assignee":"{seeded.usernames[assignee]}","status":"open"}}'
                kind = "case_assigned"
            else:
                data, kind = f'{{"topic":"{first.topic}"}}', "case_labels"
            activities.append(f"{activity_id}\t{kind}\t{brand}\t{case_id}\t{actor}\t{data}\t{_ts(at)}\n")
            activity_id += 1
        resolved_at = _ts(at + timedelta(hours=1)) if status == "resolved" else NULL
        needs_reply = "t" if first.needs_reply and status != "resolved" else "f"
        cases.append(f"{case_id}\t{brand}\t{customer}\t{first.subject}\t{status}\t{first.priority}\t{first.topic}"
                     f"\t{first.sentiment}\t{first.urgency}\t{needs_reply}\t{assignee or NULL}\t{_ts(created)}"
                     f"\t{_ts(at)}\t{_ts(last_inbound)}\t{_ts(first_response) if first_response else NULL}"
                     f"\t{resolved_at}\n")
    with pg.cursor() as cur:
        with cur.copy("COPY cases_case (id, brand_id, customer_id, subject, status, priority, topic, sentiment, "
                      "urgency, needs_reply, assignee_id, created_at, updated_at, last_inbound_at, first_response_at, "
                      "resolved_at) FROM STDIN") as copy:
            copy.write("".join(cases))
        with cur.copy("COPY cases_post (id, installation_id, external_id, author_id, case_id, direction, is_direct, "
                      "summoned, matched_keywords, text, language, url, in_reply_to_external_id, "
                      "conversation_external_id, created_at, received_at, raw, triage, edited_at, deleted_at) "
                      "FROM STDIN") as copy:
            copy.write("".join(posts))
        with cur.copy("COPY cases_activity (id, kind, brand_id, case_id, actor_id, data, created_at) "
                      "FROM STDIN") as copy:
            copy.write("".join(activities))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the default sizes (0.01: a quick run)")
    parser.add_argument("--cases", type=int)
    parser.add_argument("--posts", type=int)
    parser.add_argument("--activities", type=int)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database", default=BIG_DB)
    args = parser.parse_args()
    base = Sizes().scaled(args.scale)
    sizes = Sizes(args.cases or base.cases, args.posts or base.posts, args.activities or base.activities)

    from _db import setup_database

    began = time.monotonic()
    print(f"building {args.database}: {sizes.cases:,} cases, {sizes.posts:,} posts, {sizes.activities:,} "
          f"activities, {sizes.authors:,} authors, seed {args.seed}")
    setup_database(args.database)
    from django.db import connection, transaction

    timings = {"create and migrate": time.monotonic() - began}
    t = time.monotonic()
    with transaction.atomic():
        seeded = seed_accounts()
    timings["brands, users, installations"] = time.monotonic() - t
    timings.update(load(connection, sizes, seeded, args.seed))
    for stage, seconds in timings.items():
        print(f"{stage:<36} {seconds:8.1f} s")
    print(f"{'total':<36} {time.monotonic() - began:8.1f} s")
    print(f"log in as {seeded.agent_username!r} / {AGENT_PASSWORD!r}; API token {seeded.api_token}")


if __name__ == "__main__":
    main()
