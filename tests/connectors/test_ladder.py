"""The listening ladder's choice, pure: every transition and the reason shown for each rung passed over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caredesk.connectors.base import Rung
from caredesk.connectors.ladder import (
    FAILURES_TO_FALL,
    IMPORT_ADVICE,
    RETRY,
    RETRY_CAP,
    WEBHOOK_WINDOW,
    Ladder,
    RungState,
    choose,
    lower_automatic,
    may_stream,
    retry_after,
    why_not,
)

NOW = datetime(2026, 12, 7, 14, 40, tzinfo=UTC)
ALL = (Rung.WEBHOOK, Rung.STREAM, Rung.POLL, Rung.IMPORT)


def test_a_webhook_works_while_a_delivery_or_crc_check_came_in_the_last_25_hours():
    fresh = Ladder().worked(Rung.WEBHOOK, NOW - WEBHOOK_WINDOW + timedelta(minutes=1))
    assert choose(ALL, fresh, NOW, stream_held=True).rung == Rung.WEBHOOK
    stale = Ladder().worked(Rung.WEBHOOK, NOW - WEBHOOK_WINDOW - timedelta(minutes=1))
    choice = choose(ALL, stale, NOW, stream_held=True)
    assert choice.rung == Rung.STREAM
    assert choice.reasons == ("webhook: no delivery or CRC check in the last 25 h",)
    assert choose(ALL, Ladder(), NOW, stream_held=True).reasons == ("webhook: no delivery or CRC check received yet",)


def test_a_stream_works_only_while_a_listener_holds_it():
    choice = choose(ALL, Ladder(), NOW, stream_held=False)
    assert choice.rung == Rung.POLL
    assert choice.reasons == ("webhook: no delivery or CRC check received yet",
                              "stream: no `caredesk listen` process is running")
    assert choose(ALL, Ladder(), NOW, stream_held=True).rung == Rung.STREAM


def test_a_refused_stream_falls_to_polling_and_climbs_back_after_its_while():
    refused = Ladder().refused(Rung.STREAM, "403: client not enrolled", NOW)
    choice = choose(ALL, refused, NOW, stream_held=True)
    assert choice.rung == Rung.POLL
    assert choice.reasons[1] == "stream: refused by the platform (403: client not enrolled) until 15:40 UTC"
    assert not may_stream(ALL, refused, NOW)
    later = NOW + RETRY + timedelta(seconds=1)
    assert may_stream(ALL, refused, later)
    assert choose(ALL, refused, later, stream_held=True).rung == Rung.STREAM
    # Refused again: twice as long, and the reason says when, with the date once it is not today.
    twice = refused.refused(Rung.STREAM, "403 again", later)
    assert twice[Rung.STREAM].failed_until == later + 2 * RETRY and twice[Rung.STREAM].falls == 2
    worked = twice.worked(Rung.STREAM, later)
    assert worked[Rung.STREAM] == RungState(last_ok_at=later)  # a success forgets the falls
    far = Ladder({Rung.STREAM: RungState(failed_until=NOW + timedelta(days=1), reason="refused by the platform (x)")})
    assert why_not(Rung.STREAM, far, NOW, stream_held=True) == "refused by the platform (x) until 2026-12-08 14:40 UTC"


def test_the_retry_doubles_up_to_a_cap():
    assert [retry_after(n) for n in (1, 2, 3)] == [RETRY, 2 * RETRY, 4 * RETRY]
    assert retry_after(30) == RETRY_CAP
    assert retry_after(2, base=timedelta(seconds=2)) == timedelta(seconds=4)


def test_a_stream_falls_after_failures_in_a_row_only_where_polling_can_take_over():
    ladder = Ladder()
    for n in range(1, FAILURES_TO_FALL):
        ladder = ladder.failed_once(Rung.STREAM, f"503 number {n}", NOW, ALL)
        assert not ladder[Rung.STREAM].failed(NOW) and ladder[Rung.STREAM].failures == n
        assert choose(ALL, ladder, NOW, stream_held=True).rung == Rung.STREAM  # still reconnecting
    ladder = ladder.failed_once(Rung.STREAM, "503 again", NOW, ALL)
    assert ladder[Rung.STREAM].failed(NOW)
    assert ladder[Rung.STREAM].reason == f"failed {FAILURES_TO_FALL} times in a row (last: 503 again)"
    assert choose(ALL, ladder, NOW, stream_held=True).rung == Rung.POLL
    # A stream-only platform has nothing automatic below: it keeps reconnecting rather than going dark.
    only = (Rung.STREAM, Rung.IMPORT)
    ladder = Ladder()
    for _ in range(FAILURES_TO_FALL * 2):
        ladder = ladder.failed_once(Rung.STREAM, "503", NOW, only)
    assert not ladder[Rung.STREAM].failed(NOW)
    assert lower_automatic(only, Rung.STREAM) == [] and lower_automatic(ALL, Rung.WEBHOOK) == [Rung.STREAM, Rung.POLL]


def test_nothing_automatic_left_means_import_with_every_reason():
    ladder = Ladder().refused(Rung.STREAM, "403", NOW).refused(Rung.POLL, "no access to this endpoint", NOW)
    choice = choose(ALL, ladder, NOW, stream_held=True)
    assert choice.rung == Rung.IMPORT
    assert choice.reasons == (
        "webhook: no delivery or CRC check received yet",
        "stream: refused by the platform (403) until 15:40 UTC",
        "poll: refused by the platform (no access to this endpoint) until 15:40 UTC",
    )
    assert choice.advice.startswith(IMPORT_ADVICE + " (webhook: no delivery")
    # A file import is not a fall: nothing to advise.
    assert choose((Rung.IMPORT,), Ladder(), NOW, stream_held=False).advice == ""


def test_a_working_webhook_means_no_stream_and_only_allowed_rungs_count():
    hooked = Ladder().worked(Rung.WEBHOOK, NOW)
    assert not may_stream(ALL, hooked, NOW)
    assert may_stream((Rung.STREAM, Rung.POLL, Rung.IMPORT), hooked, NOW)  # no webhook allowed: it does not count
    assert not may_stream((Rung.POLL, Rung.IMPORT), Ladder(), NOW)
    assert choose((Rung.POLL, Rung.IMPORT), hooked, NOW, stream_held=True).rung == Rung.POLL


def test_the_state_round_trips_and_bad_stored_state_is_ignored():
    ladder = Ladder().refused(Rung.STREAM, "403", NOW).worked(Rung.WEBHOOK, NOW)
    assert Ladder.from_json(ladder.to_json()) == ladder
    junk = {"stream": {"failed_until": "not a time"}, "carrier-pigeon": {}, "poll": "x",
            "webhook": {"failed_until": "2026-12-07T16:00:00", "failures": -3, "falls": True}}
    assert Ladder.from_json(junk).states == {Rung.WEBHOOK: RungState()}
    assert Ladder.from_json(None) == Ladder()
    assert ladder.cleared()[Rung.STREAM] == RungState() and ladder.cleared()[Rung.WEBHOOK].last_ok_at == NOW


def test_a_success_is_written_again_only_once_a_minute_unless_something_changed():
    ladder = Ladder().worked(Rung.WEBHOOK, NOW)
    assert not ladder.needs_write(Rung.WEBHOOK, NOW + timedelta(seconds=30))
    assert ladder.needs_write(Rung.WEBHOOK, NOW + timedelta(minutes=2))
    failing = ladder.failed_once(Rung.WEBHOOK, "x", NOW, ALL)
    assert failing.needs_write(Rung.WEBHOOK, NOW)
