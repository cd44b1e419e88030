"""What a month of X costs a brand on each rung of the connection ladder, measured through the real X provider.

    python bench/x_cost_month.py [--mentions 1000] [--keywords 20000] [--days 30] [--compare-hours 2]
    python bench/x_cost_month.py --model [--overlap 0]     # the old pure simulation, as a cross-check

Measured (the default): one simulated UTC day, read by :class:`XProvider` from the fake X server of its tests
(tests/connectors/x/fake_x.py) on each rung, the usage it reports priced by ``Meter(DEFAULT_X_PRICES)`` (the
meter the ledger uses, the daily de-duplication included); see bench/_xcost.py for how each rung is driven. A
month is ``--days`` such days: the de-duplication resets each UTC day, so a month is the day times 30.

Assumptions (printed with the figures): ``--mentions`` posts a day address the brand and ``--keywords`` more only
match its keyword, spread evenly over the day, each by one of ``--authors`` users; no mention also matches the
keyword; the previous day's last 100 of each were read already (the cursor starts after them). Replies, DMs and
post creation are not priced (they cost the same on every rung). Rate limits are not enforced by the fake.

Caching, compared with the cache disabled where the code allows it: the brand's user id kept in config at setup
(without it, each poll, made by a new provider as the worker does, asks ``/2/users/me``; a stream asks once per
connection) and the cursor (without it each poll reads the latest page again). Polling rungs are compared on
``--compare-hours`` from ``--compare-from`` at full rate, billed after the reads of the day's earlier hours, and
scaled to the day (printed); the stream on one connection.
User objects come with the posts (``expansions=author_id``): the lookups that saves are an estimate, one user
read per distinct author a day.

``--model``: the pure simulation this benchmark started as (no provider, no HTTP), its polls re-reading the last
``--overlap`` minutes, which the provider does not do (it trusts ``since_id``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _xcost as x  # noqa: E402

from caredesk.connectors.builtin.x import XProvider  # noqa: E402
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, POST_READS, Meter, Operation, UsageEvent  # noqa: E402

CAP = DEFAULT_X_PRICES.monthly_post_read_cap or 0
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


def model(args: argparse.Namespace) -> None:
    mentions = _arrivals(args.mentions, args.days, "m")
    keywords = _arrivals(args.keywords, args.days, "k")
    end = START + timedelta(days=args.days)
    overlap = timedelta(minutes=args.overlap)
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
    print(f"MODEL (no provider): {args.mentions} mentions + {args.keywords} keyword matches a day, {args.days} days, "
          f"poll overlap {args.overlap:g} min, prices {DEFAULT_X_PRICES.currency}")
    print(f"{'rung':58} {'reads billed':>12} {'saved by dedupe':>15} {'USD/month':>10}  cap")
    for name, (reads, deduped, cost) in rungs:
        print(f"{name:58} {reads:>12,} {deduped:>15,} {cost:>10,.2f}  {'PASSED' if reads > CAP else 'ok'}")


@dataclass
class Row:
    name: str
    requests: float  # a day
    bill: x.Bill
    scale: float = 1.0  # the bill and requests are of 1/scale of the day
    note: str = ""

    def day(self, value: float) -> float:
        return value * self.scale


def _row(name: str, run: x.DayRun, *, scale: float = 1.0, note: str = "") -> Row:
    return Row(name, run.request_count, x.bill(run.usage), scale, note)


def measured(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    plan = x.plan_day(date(2026, 11, 2), args.mentions, args.keywords, authors=args.authors)
    hours = timedelta(hours=args.compare_hours)
    part = 24 / args.compare_hours
    rows: list[Row] = []
    webhook = x.run_webhook(plan)
    rows.append(_row("webhook: Activity API deliveries (mentions only)", webhook))
    stream = x.run_stream(plan)
    rows.append(_row("stream: Activity API + filtered stream", stream))
    rows.append(_row("filtered stream only (mentions as a rule)*", x.run_stream(plan, activity=False)))
    floor = XProvider.min_poll_seconds  # the worker polls X no more often, whatever CAREDESK_POLL_INTERVAL says
    fast = x.run_poll(plan, timedelta(seconds=floor), until=plan.start + timedelta(minutes=args.fast_minutes))
    rows.append(_row(f"polling every {floor:g} s (the most often the runtime polls X)", fast,
                     scale=24 * 60 / args.fast_minutes, note=f"first {args.fast_minutes:g} min, scaled"))
    polls: dict[int, x.DayRun] = {}
    for minutes in (1, 5, 15):
        polls[minutes] = x.run_poll(plan, timedelta(minutes=minutes))
        rows.append(_row(f"polling every {minutes} min", polls[minutes]))
    both = x.DayRun(requests=polls[15].requests, usage=[*webhook.usage, *polls[15].usage])
    rows.append(_row("webhook + catch-up polls every 15 min (as the runtime runs it)**", both))
    measure_s = time.perf_counter() - began

    print(f"MEASURED through XProvider and the fake X server: {args.mentions:,} mentions + {args.keywords:,} keyword "
          f"matches on {plan.day} (UTC), {args.authors:,} authors; a month = {args.days} such days; prices "
          f"{DEFAULT_X_PRICES.currency}, the ledger's Meter with the daily de-duplication")
    print(f"{'rung':66} {'requests/day':>12} {'reads billed/day':>16} {'deduped/day':>11} {'USD/day':>9} "
          f"{'USD/month':>10} {'reads/month':>11}  3M cap")
    for row in rows:
        reads = row.day(row.bill.post_reads)
        month = reads * args.days
        print(f"{row.name:66} {row.day(row.requests):>12,.0f} {reads:>16,.0f} {row.day(row.bill.deduped):>11,.0f} "
              f"{float(row.bill.cost) * row.scale:>9,.2f} {float(row.bill.cost) * row.scale * args.days:>10,.2f} "
              f"{month:>11,.0f}  {'PASSED' if month > CAP else 'under'}{'  (' + row.note + ')' if row.note else ''}")
    print(f"{'manual import':66} {0:>12} {0:>16} {0:>11} {0:>9.2f} {0:>10.2f} {0:>11}  under")
    for row in rows:
        ops = ", ".join(f"{op.value} {row.day(n):,.0f}" for op, n in sorted(row.bill.reads.items()))
        print(f"  {row.name}: {ops}")
    print("  * not a mode of the provider: its stream always opens the Activity API stream too; here that stream is "
          "silent and the mentions come as filtered-stream matches")
    print("  ** on the webhook rung the worker still polls every CAREDESK_CATCHUP_POLL_SECONDS (900 s) so that a lost "
          "delivery is not lost: each mention is then read twice, delivered and as an owned read")
    for name, run in (("webhook", webhook), ("stream", stream), ("polling every 1 min", polls[1])):
        avoided = x.user_lookups_avoided(plan, run)
        print(f"  user lookups avoided by expansions ({name}, estimate): {avoided.reads[Operation.USER_READ]:,} "
              f"distinct authors a day = {avoided.cost:,.2f} USD/day")

    print(f"\nCACHING: what the code avoids, against a run with the cache disabled (polls: {args.compare_hours:g} h "
          f"from {args.compare_from:g}:00 UTC at full rate, billed after the day's earlier reads, scaled x{part:g}; "
          f"the stream: one connection)")
    print(f"{'rung':28} {'/users/me req/day':>17} {'no cursor: reads billed':>23} {'deduped':>9} {'(USD)':>8} "
          f"{'missed':>8} {'USD/day':>9}   (with cursor: reads billed, USD/day)")
    small = x.plan_day(plan.day, 5, 5, authors=args.authors)
    warm, cold_id, cold_cursor = x.run_stream(small), x.run_stream(small, user_id_in_config=False), \
        x.run_stream(small, keep_cursor=False)
    base, nocur = x.bill(warm.usage), x.bill(cold_cursor.usage)
    print(f"{'stream, per connection':28} {cold_id.request_count - warm.request_count:>17} "
          f"{nocur.post_reads - base.post_reads:>+23} {nocur.deduped:>9} {float(nocur.saved):>8.2f} {'-':>8} "
          f"{nocur.cost - base.cost:>+9.2f}")
    since = plan.start + timedelta(hours=args.compare_from)
    earlier = x.billed_before(plan, since)
    for minutes in (1, 5, 15):
        every = timedelta(minutes=minutes)
        until = since + hours
        ref = x.run_poll(plan, every, since=since, until=until)
        no_id = x.run_poll(plan, every, since=since, until=until, user_id_in_config=False)
        no_cursor = x.run_poll(plan, every, since=since, until=until, keep_cursor=False)
        got, lost = x.bill(ref.usage, earlier), x.bill(no_cursor.usage, earlier)
        print(f"{'polling every ' + str(minutes) + ' min':28} "
              f"{(no_id.requests['GET /2/users/me'] - ref.requests['GET /2/users/me']) * part:>17,.0f} "
              f"{lost.post_reads * part:>23,.0f} {lost.deduped * part:>9,.0f} {float(lost.saved) * part:>8,.2f} "
              f"{x.missed(plan, no_cursor, since) * part:>8,.0f} "
              f"{float(lost.cost) * part:>9,.2f}   ({got.post_reads * part:,.0f}, {float(got.cost) * part:,.2f})")
    print(f"\n{measure_s:.0f} s for the rungs, {time.perf_counter() - began:.0f} s in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=1000, help="mentions a day")
    parser.add_argument("--keywords", type=int, default=20000, help="keyword matches a day")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--authors", type=int, default=5000, help="distinct users who write the day's posts")
    parser.add_argument("--compare-hours", type=float, default=2.0, help="hours of the day for the cache comparison")
    parser.add_argument("--compare-from", type=float, default=10.0, help="hour of the day the comparison starts")
    parser.add_argument("--fast-minutes", type=float, default=60.0,
                        help="minutes of polling at the provider's floor (15 s), scaled")
    parser.add_argument("--model", action="store_true", help="the pure simulation instead (no provider)")
    parser.add_argument("--overlap", type=float, default=0.0, help="--model: minutes each poll re-reads")
    args = parser.parse_args()
    if args.model:
        model(args)
    else:
        measured(args)


if __name__ == "__main__":
    main()
