"""What a month of X costs a brand on each rung of the connection ladder, priced by caredesk's own meter.

    python bench/x_cost_month.py [--mentions 1000] [--keywords 20000] [--days 30] [--overlap 2]

A pure simulation (no network, no database): the posts of a month are generated, each rung's calls are turned
into :class:`UsageEvent` values and priced by :class:`Meter` with ``DEFAULT_X_PRICES`` (the daily
de-duplication within the UTC day included). Printed per rung: post reads billed, reads saved by the
de-duplication, dollars for the month, and whether the platform's monthly cap of 3M post reads is passed.

Assumptions (state them with the figures):

* ``--mentions`` posts a day address the brand (@mention or reply) and ``--keywords`` more only match its
  listening keywords; both arrive evenly over the day, each post a distinct id; a 30-day month.
* **webhook / Activity API (XAA)**: every delivered event is billed as a post read ($0.005, X's docs: "post
  events bill as post reads"). XAA delivers events about the brand's account only (mentions, replies, quotes,
  DMs): it cannot deliver keyword matches, so on this rung keywords come from the filtered stream (next rung).
  Shown twice: mentions only, and mentions by XAA plus keywords by the filtered stream.
* **filtered stream**: every matched post delivered is billed as a post read; each is delivered once, so the
  de-duplication saves nothing. Mentions are a stream rule too (``@brand``).
* **polling**: the mentions timeline (``GET /2/users/:id/mentions``, an *owned read*, $0.001) every N minutes
  with ``since_id``, plus recent search for the keywords (post reads, $0.005) every N minutes with
  ``since_id``. Both re-read the last ``--overlap`` minutes of each poll (recent search indexes late, a
  poller that trusts since_id alone misses posts indexed after its last call): those re-reads are what the
  daily de-duplication makes free, except across UTC midnight. Rate limits (450 requests per 15 min per app,
  100 posts a page) are not reached at these volumes and are not modelled.
* Users are not read separately (``expansions=author_id`` comes with the posts); replies, DMs and post
  creation are not priced here (they cost the same on every rung).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, POST_READS, Meter, Operation, UsageEvent

START = datetime(2026, 11, 1, tzinfo=UTC)


def _arrivals(per_day: int, days: int, prefix: str) -> list[tuple[datetime, str]]:
    step = 86_400 / per_day
    return [(START + timedelta(days=d, seconds=i * step), f"{prefix}{d}-{i}") for d in range(days)
            for i in range(per_day)]


def _delivered(posts: list[tuple[datetime, str]], operation: Operation) -> Iterator[UsageEvent]:
    for at, pid in posts:
        yield UsageEvent(operation, at, (pid,))


def _polled(posts: list[tuple[datetime, str]], operation: Operation, every: timedelta, overlap: timedelta,
            end: datetime) -> Iterator[UsageEvent]:
    """A poll at each ``every`` returns the posts since the previous poll, and those of ``overlap`` before it."""
    i = lo = 0
    at = START + every
    while at <= end:
        while i < len(posts) and posts[i][0] <= at:
            i += 1
        while lo < i and posts[lo][0] <= at - every - overlap:
            lo += 1
        ids = tuple(pid for _, pid in posts[lo:i])
        if ids:
            yield UsageEvent(operation, at, ids)
        at += every


def _bill(*streams: Iterator[UsageEvent]) -> tuple[int, int, Decimal]:
    meter = Meter(DEFAULT_X_PRICES)
    reads = deduped = 0
    cost = Decimal(0)
    day = None
    for stream in streams:
        meter.seen.clear()
        for event in stream:
            if event.day != day:  # the platform forgets yesterday's reads: so may the meter (memory)
                day = event.day
                meter.seen = {k for k in meter.seen if k[0] == day}
            for line in meter.bill([event]):
                if line.operation in POST_READS:
                    reads += line.billed
                deduped += line.deduped
                cost += line.cost
    return reads, deduped, cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=1000, help="mentions a day")
    parser.add_argument("--keywords", type=int, default=20000, help="keyword matches a day")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--overlap", type=float, default=2.0, help="minutes each poll re-reads")
    args = parser.parse_args()
    mentions = _arrivals(args.mentions, args.days, "m")
    keywords = _arrivals(args.keywords, args.days, "k")
    end = START + timedelta(days=args.days)
    overlap = timedelta(minutes=args.overlap)
    cap = DEFAULT_X_PRICES.monthly_post_read_cap or 0
    rungs: list[tuple[str, tuple[int, int, Decimal]]] = [
        ("activity API (XAA), mentions only", _bill(_delivered(mentions, Operation.POST_READ))),
        ("XAA mentions + filtered stream keywords",
         _bill(_delivered(mentions, Operation.POST_READ), _delivered(keywords, Operation.POST_READ))),
        ("filtered stream, mentions + keywords",
         _bill(_delivered(mentions + keywords, Operation.POST_READ))),
    ]
    for minutes in (1, 5, 15):
        every = timedelta(minutes=minutes)
        rungs.append((f"polling every {minutes} min (mentions timeline + recent search)",
                      _bill(_polled(mentions, Operation.OWNED_READ, every, overlap, end),
                            _polled(keywords, Operation.POST_READ, every, overlap, end))))
    print(f"{args.mentions} mentions + {args.keywords} keyword matches a day, {args.days} days, "
          f"poll overlap {args.overlap:g} min, prices {DEFAULT_X_PRICES.currency}")
    print(f"{'rung':58} {'reads billed':>12} {'saved by dedupe':>15} {'USD/month':>10}  cap")
    for name, (reads, deduped, cost) in rungs:
        print(f"{name:58} {reads:>12,} {deduped:>15,} {cost:>10,.2f}  {'PASSED' if reads > cap else 'ok'}")


if __name__ == "__main__":
    main()
