"""The X cost benchmark's core (bench/_xcost.py) on a tiny day, against prices worked out by hand: the benchmark
reads through the real provider and the fake X server, so a change in what the provider reads or reports shows
here before it silently changes the figures in docs/benchmarks.md."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import _xcost as bench  # noqa: E402

from caredesk.connectors.costs.prices import Operation  # noqa: E402

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def plan() -> bench.DayPlan:
    # 3 mentions and 5 keyword matches in the day; yesterday's last 2 of each were read already.
    return bench.plan_day(date(2026, 11, 2), 3, 5, authors=4, before=2)


def test_the_day_is_what_it_says(plan: bench.DayPlan) -> None:
    ids = [p["id"] for p in (*plan.before_mentions, *plan.before_keywords)]
    day = [p["id"] for p in sorted((*plan.mentions, *plan.keywords), key=lambda p: int(p["id"]))]
    assert (len(plan.mentions), len(plan.keywords), len(ids)) == (3, 5, 4)
    assert all(bench.arrival(i) < plan.start for i in ids)
    assert all(plan.start <= bench.arrival(i) < plan.end for i in day)
    assert max(ids, key=int) < min(day, key=int)  # ids increase with time, as X's snowflakes do
    assert all(f"@{bench.OUR_HANDLE}" in p["text"] for p in plan.mentions)


def test_webhook_bills_each_delivered_mention_as_a_post_read(plan: bench.DayPlan) -> None:
    run = bench.run_webhook(plan)
    bill = bench.bill(run.usage)
    assert run.request_count == 0  # X pushes
    assert run.posts == plan.ids(plan.mentions)
    assert bill.reads == {Operation.POST_READ: 3}
    assert bill.cost == 3 * Decimal("0.005")


def test_stream_bills_every_delivered_post_and_makes_six_requests(plan: bench.DayPlan) -> None:
    run = bench.run_stream(plan)
    bill = bench.bill(run.usage)
    # On connecting, the stream catches up the mentions timeline and the keywords' recent search from its cursor.
    assert run.requests == {"GET /2/activity/subscriptions": 1, "GET /2/tweets/search/stream/rules": 1,
                            "GET /2/activity/stream": 1, "GET /2/tweets/search/stream": 1,
                            f"GET /2/users/{bench.OUR_ID}/mentions": 1, "GET /2/tweets/search/recent": 1}
    assert run.posts == plan.ids(plan.mentions) | plan.ids(plan.keywords)
    assert bill.reads == {Operation.POST_READ: 8}
    assert (bill.cost, bill.deduped) == (8 * Decimal("0.005"), 0)
    assert all(plan.start <= e.at < plan.end for e in run.usage)


def test_stream_without_its_cursor_reads_yesterdays_mentions_again(plan: bench.DayPlan) -> None:
    run = bench.run_stream(plan, keep_cursor=False)
    # ... and yesterday's keyword matches, through the recent search of its catch-up.
    assert bench.bill(run.usage).reads == {Operation.POST_READ: 10, Operation.OWNED_READ: 2}
    assert bench.run_stream(plan, user_id_in_config=False).requests["GET /2/users/me"] == 1


def test_hourly_polls_bill_mentions_as_owned_reads_and_keywords_as_post_reads(plan: bench.DayPlan) -> None:
    run = bench.run_poll(plan, HOUR)
    bill = bench.bill(run.usage)
    assert run.polls == 24
    assert run.requests == {f"GET /2/users/{bench.OUR_ID}/mentions": 24, "GET /2/tweets/search/recent": 24}
    assert run.posts == plan.ids(plan.mentions) | plan.ids(plan.keywords)
    assert bill.reads == {Operation.OWNED_READ: 3, Operation.POST_READ: 5}
    assert bill.cost == 3 * Decimal("0.001") + 5 * Decimal("0.005")
    assert bill.deduped == 0  # with since_id nothing is read twice
    assert bench.missed(plan, run) == 0


def test_what_the_caches_save_on_polls(plan: bench.DayPlan) -> None:
    asking = bench.run_poll(plan, HOUR, user_id_in_config=False)
    assert asking.requests["GET /2/users/me"] == 24  # one per poll: the worker makes a new provider each time
    fresh = bench.run_poll(plan, HOUR, keep_cursor=False)
    bill = bench.bill(fresh.usage)
    # Without the cursor every poll reads the latest page: yesterday's 2 + 2 are billed again today, and each
    # re-read of the day's posts is free only thanks to the daily de-duplication.
    assert bill.reads == {Operation.OWNED_READ: 5, Operation.POST_READ: 7}
    assert bill.cost == 5 * Decimal("0.001") + 7 * Decimal("0.005")
    assert bill.deduped > 0
    assert bench.user_lookups_avoided(plan, fresh).cost == len(fresh.authors) * Decimal("0.010")
