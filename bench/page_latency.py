"""Page and API list latencies on the large database (issue 11): p50 / p95 / p99 over N requests each.

    python bench/big_db.py               # first, once: builds caredesk_bench_big
    python bench/page_latency.py [--requests 20] [--warmup 2] [--database caredesk_bench_big]

Requests go through Django's test client in this process (the whole middleware stack, views, templates and
queries; no HTTP server, no network), logged in as the seeded ``agent`` (a member of every brand, so every case is
visible), and to the API with a bearer token made for that agent. The case page asks for a different case each
time, at random over all cases. Each response must be 200; lists must hold rows.

Deep pages: the lists page by cursor (caredesk.cases.paging), so "page 9,000" and "offset=900000" are asked for
as the cursor of the case 90 % down the list (found once, before measuring, with one slow OFFSET query). The API
refuses an offset over 10,000 now; ``offset=10000`` is measured as the deepest one it still takes.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from big_db import BIG_DB


@dataclass(frozen=True)
class Target:
    name: str
    url: Callable[[random.Random], str]
    api: bool = False
    htmx: bool = False
    empty: bool = False  # the list is expected to be empty


def targets(deep: DeepCursors, max_case_id: int, small_brand: tuple[int, str]) -> list[Target]:
    """What issue 11 names, in its order: the inbox, its filters and a deep page; the API's lists; a case page;
    then the other inbox views (queues, filters, sort) and the API's detail."""
    brand_id, brand_slug = small_brand
    found = [
        Target("inbox: default page", lambda _: "/"),
        Target("inbox: all statuses", lambda _: "/?status=any"),
        Target("inbox: urgent first, all statuses", lambda _: "/?status=any&sort=urgent"),
        Target(f"inbox: {deep.depth:,} down, all statuses", lambda _: f"/?status=any&cursor={deep.newest}"),
        Target(f"inbox: {deep.depth:,} down, urgent", lambda _: f"/?status=any&sort=urgent&cursor={deep.urgent}"),
        Target("API: GET /api/cases", lambda _: "/api/cases", api=True),
        Target("API: needs_reply=true", lambda _: "/api/cases?needs_reply=true", api=True),
        Target("API: q=refund", lambda _: "/api/cases?q=refund", api=True),
        Target("API: q=modem (rarer word)", lambda _: "/api/cases?q=modem", api=True),
        Target("API: q=xylophone (no case has it)", lambda _: "/api/cases?q=xylophone", api=True, empty=True),
        Target(f"API: cursor {deep.depth:,} down", lambda _: f"/api/cases?cursor={deep.newest}", api=True),
        Target(f"API: cursor {deep.depth:,} down, urgent",
               lambda _: f"/api/cases?ordering=urgent&cursor={deep.urgent}", api=True),
        Target("API: ordering=urgent", lambda _: "/api/cases?ordering=urgent", api=True),
        Target("API: status=new,open&assignee=none", lambda _: "/api/cases?status=new,open&assignee=none", api=True),
        Target(f"API: brand={brand_slug}", lambda _: f"/api/cases?brand={brand_slug}", api=True),
        Target("API: GET /api/cases/{id}", lambda rng: f"/api/cases/{rng.randint(1, max_case_id)}", api=True),
        Target("case page (full page)", lambda rng: f"/cases/{rng.randint(1, max_case_id)}/"),
        Target("case pane (HTMX)", lambda rng: f"/cases/{rng.randint(1, max_case_id)}/", htmx=True),
        Target("inbox: urgent first (active)", lambda _: "/?sort=urgent"),
        Target("inbox: unassigned queue", lambda _: "/?queue=unassigned"),
        Target("inbox: mine queue", lambda _: "/?queue=mine"),
        Target(f"inbox: brand filter (smallest brand, {brand_slug})", lambda _: f"/?brand={brand_id}"),
        Target("inbox: needs reply, all statuses", lambda _: "/?status=any&needs_reply=on"),
        Target("inbox: priority urgent (active)", lambda _: "/?priority=4"),
        Target("inbox: topic billing, all statuses", lambda _: "/?status=any&topic=billing"),
        Target("inbox: list partial (HTMX), all statuses", lambda _: "/cases/?status=any", htmx=True),
    ]
    found.append(Target("API: offset=10000 (the most it takes)", lambda _: "/api/cases?offset=10000", api=True))
    return found


@dataclass(frozen=True)
class DeepCursors:
    depth: int
    newest: str
    urgent: str


def deep_cursors(depth: int) -> DeepCursors:
    """Cursors that start the page ``depth`` rows down each ordering of all cases (one OFFSET query each)."""
    from urllib.parse import quote

    from caredesk.cases.models import Case
    from caredesk.cases.paging import encode_cursor
    from caredesk.cases.queries import ORDERINGS

    tokens = {}
    for ordering in ("newest", "urgent"):
        row = Case.objects.order_by(*ORDERINGS[ordering])[depth - 1 : depth].get()
        tokens[ordering] = quote(encode_cursor(row, ordering, "older"))
    return DeepCursors(depth, tokens["newest"], tokens["urgent"])


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile: of 20 samples, p95 is the 19th fastest (the second slowest), p99 the slowest."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def measure(client: Any, target: Target, token: str, requests: int, warmup: int, seed: int = 11,
            cpu: list[float] | None = None) -> list[float]:
    """Wall-clock seconds of each measured request; ``cpu`` gets each one's CPU seconds in this process (Python's
    share: what other work on the machine does not inflate, and what the database does not count in)."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"} if target.api else {"HX-Request": "true"} if target.htmx else {}
    samples = []
    for i in range(warmup + requests):
        url = target.url(rng)
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers)
        elapsed = time.perf_counter() - began
        if cpu is not None and i >= warmup:
            cpu.append(time.process_time() - began_cpu)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
        if target.api and not target.empty and "count" in response.json() and not response.json()["items"]:
            raise SystemExit(f"{url}: no cases: is this the big database?")
        if i >= warmup:
            samples.append(elapsed)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--database", default=BIG_DB)
    parser.add_argument("--depth", type=int, help="how deep the deep pages start (default: 90 %% down all cases)")
    parser.add_argument("--only", default="", help="measure only the targets whose name contains this")
    parser.add_argument("--skip", default="", help="leave out the targets whose name contains this")
    args = parser.parse_args()

    from _db import use_database

    use_database(args.database)
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from caredesk.accounts.actions import do_create_api_token
    from caredesk.cases.models import Case

    agent = User.objects.get(username="agent")
    token = do_create_api_token(agent, "page-latency")
    client = Client(HTTP_HOST="localhost")  # an allowed host of the default settings
    client.force_login(agent)
    total = Case.objects.count()
    max_case_id = Case.objects.order_by("-id").values_list("id", flat=True)[0]
    depth = args.depth or max(1, total * 9 // 10)  # 90 % down all statuses
    deep = deep_cursors(depth)
    from caredesk.accounts.models import Brand

    small = Brand.objects.order_by("-id").values_list("id", "slug")[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    print(f"{args.database}: {total:,} cases; {args.requests} requests each after {args.warmup} warm-up; "
          f"in-process Django test client; {version.split(' on ')[0]}")
    print(f"{'target':<44} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}  (mean; CPU of this process)")
    for target in targets(deep, max_case_id, small):
        if (args.only and args.only not in target.name) or (args.skip and args.skip in target.name):
            continue
        cpu: list[float] = []
        samples = measure(client, target, token, args.requests, args.warmup, cpu=cpu)
        p50, p95, p99 = (percentile(samples, p) * 1000 for p in (50, 95, 99))
        print(f"{target.name:<44} {p50:9.0f} {p95:9.0f} {p99:9.0f} {max(samples) * 1000:9.0f}"
              f"   (mean {statistics.fmean(samples) * 1000:.0f}; CPU p50 {percentile(cpu, 50) * 1000:.0f}"
              f" p95 {percentile(cpu, 95) * 1000:.0f})", flush=True)


if __name__ == "__main__":
    main()
