"""The live stream: events committed after subscribing, resuming from a position, transactions that commit out of id
order, backlogs beyond one page and beyond the replay limit, presence. These need real commits
(``transactional_db``) because PostgreSQL delivers NOTIFY only on commit. Who hears what: test_inbox_stream_access."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import AsyncClient
from django.utils import timezone
from inbox_support import in_thread as _in_thread
from inbox_support import parse_sse as _parse

from caredesk.cases.actions import do_add_note, do_resolve_case, lock_case
from caredesk.cases.models import Activity, Case
from caredesk.inbox.actions import do_heartbeat
from caredesk.inbox.presenters import get_stream_cursor
from caredesk.inbox.stream import (
    PAGE_SIZE,
    EventHub,
    Position,
    Viewer,
    event_stream,
    format_position,
    parse_position,
)
from factories import ingest, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")
TIMEOUT = 10.0


def _close_connection() -> None:
    connection.close()


async def _next(stream: AsyncIterator[str]) -> dict[str, Any]:
    return _parse(await asyncio.wait_for(anext(stream), TIMEOUT))


async def _next_event(stream: AsyncIterator[str]) -> dict[str, Any]:
    while True:
        chunk = await _next(stream)
        if "event" in chunk:
            return chunk


@pytest.fixture
def case(transactional_db: None) -> Case:
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="s1"))
    return Case.objects.get()


@pytest.fixture
def agent(transactional_db: None) -> User:
    return make_user("ana")


def _add_note(case_id: int, user_id: int, text: str) -> int:
    with transaction.atomic():
        note = do_add_note(lock_case(case_id), User.objects.get(pk=user_id), text, timezone.now())
    return Activity.objects.get(kind="note_added", data__note_id=note.pk).pk


def _position_of(activity_id: int) -> Position:
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid::text FROM cases_activity WHERE id = %s", [activity_id])
        (txid,) = cursor.fetchone()
    return int(txid), activity_id


def _now() -> Position:
    return parse_position(get_stream_cursor())  # type: ignore[return-value]


def _ids(events: list[dict[str, Any]]) -> list[int]:
    return [parse_position(e["id"])[1] for e in events]  # type: ignore[index]


class _Collector:
    """Reads a stream in a task, so waiting for silence does not cancel (and so end) the stream itself."""

    def __init__(self, stream: AsyncIterator[str]) -> None:
        self.chunks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: AsyncIterator[str]) -> None:
        async for chunk in stream:
            await self.chunks.put(_parse(chunk))

    async def quiet(self, seconds: float = 0.6) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while True:
            try:
                chunk = await asyncio.wait_for(self.chunks.get(), seconds)
            except TimeoutError:
                return got
            if "event" in chunk:
                got.append(chunk)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _quiet(stream: AsyncIterator[str], seconds: float = 0.6) -> list[dict[str, Any]]:
    """Every event the stream sends until it stays silent for ``seconds`` (then the stream is done with)."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            chunk = _parse(await asyncio.wait_for(anext(stream), seconds))
        except TimeoutError:
            return got
        if "event" in chunk:
            got.append(chunk)


def test_event_for_activity_committed_after_subscribing(case: Case, agent: User) -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        stream = event_stream(None)
        try:
            hello = await _next(stream)
            assert hello["retry"] == "3000" and hello["comment"] == "connected"
            activity_id = await _in_thread(lambda: _add_note(case.pk, agent.pk, "called her"))()
            return await _next_event(stream), activity_id
        finally:
            await stream.aclose()

    event, activity_id = asyncio.run(scenario())
    assert event["event"] == "activity"
    assert event["id"] == format_position(_position_of(activity_id))
    assert event["data"] == {"case": case.pk, "kind": "note_added", "brand": case.brand_id}


def test_a_position_replays_what_was_missed(case: Case, agent: User) -> None:
    seen = _position_of(Activity.objects.order_by("id").last().pk)  # type: ignore[union-attr]
    missed = [_add_note(case.pk, agent.pk, f"note {i}") for i in range(3)]
    with transaction.atomic():
        do_resolve_case(lock_case(case.pk), agent, timezone.now())
    resolved = Activity.objects.get(kind="case_status").pk

    events = _replayed(seen)
    assert _ids(events) == [*missed, resolved]
    assert [e["data"]["kind"] for e in events] == ["note_added"] * 3 + ["case_status"]


def test_presence_event_has_no_id(case: Case, agent: User) -> None:
    def beat() -> None:
        with transaction.atomic():
            do_heartbeat(Case.objects.get(pk=case.pk), User.objects.get(pk=agent.pk), "viewing", timezone.now())

    async def scenario() -> str:
        stream = event_stream(None)
        try:
            await _next(stream)
            await _in_thread(beat)()
            return await asyncio.wait_for(anext(stream), TIMEOUT)
        finally:
            await stream.aclose()

    chunk = asyncio.run(scenario())
    assert chunk == f'event: presence\ndata: {{"case": {case.pk}}}\n\n'


def _second_case(case: Case) -> Case:
    ingest(make_installation(), make_post("another customer", external_id="s2", author_id="u2", handle="dana"))
    return Case.objects.exclude(pk=case.pk).get()  # the other writer uses another case: no row lock in the way


def test_an_event_waits_for_older_transactions_and_none_is_lost(case: Case, agent: User) -> None:
    """A takes the lower id and commits after B: B is held until A ends, then both arrive, A first, none twice."""
    other_case = _second_case(case)
    inserted, release = threading.Event(), threading.Event()
    holder: dict[str, int] = {}

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                note = do_add_note(Case.objects.get(pk=case.pk), User.objects.get(pk=agent.pk), "slow",
                                   timezone.now())
                holder["slow"] = Activity.objects.get(kind="note_added", data__note_id=note.pk).pk
                inserted.set()
                release.wait(TIMEOUT)
        finally:
            connection.close()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        stream = event_stream(None)
        writer = threading.Thread(target=slow_writer)
        await _next(stream)
        collector = _Collector(stream)
        try:
            writer.start()
            await asyncio.to_thread(inserted.wait, TIMEOUT)
            holder["fast"] = await _in_thread(lambda: _add_note(other_case.pk, agent.pk, "fast"))()
            while_held = await collector.quiet(1.0)
            release.set()
            await asyncio.to_thread(writer.join, TIMEOUT)
            return while_held, await collector.quiet()
        finally:
            release.set()
            await asyncio.to_thread(writer.join, TIMEOUT)
            await collector.close()

    while_held, after = asyncio.run(scenario())
    assert holder["slow"] < holder["fast"]
    assert while_held == []
    assert _ids(after) == [holder["slow"], holder["fast"]]


def test_a_resumed_stream_gets_the_lower_id_that_committed_after_the_one_it_saw(case: Case, agent: User) -> None:
    """B's transaction is older but inserts the higher id and commits first; the browser sees B, disconnects,
    and A commits. Resuming after B delivers A (a stream resuming "after id B" would skip it for ever)."""
    other_case = _second_case(case)
    b_has_txid, a_inserted, release_a = threading.Event(), threading.Event(), threading.Event()
    holder: dict[str, int] = {}

    def writer_b() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_current_xact_id()")  # B's transaction id is taken first
                b_has_txid.set()
                a_inserted.wait(TIMEOUT)
                note = do_add_note(Case.objects.get(pk=other_case.pk), User.objects.get(pk=agent.pk), "B",
                                   timezone.now())
            holder["b"] = Activity.objects.get(kind="note_added", data__note_id=note.pk).pk
        finally:
            connection.close()

    def writer_a() -> None:
        try:
            b_has_txid.wait(TIMEOUT)
            with transaction.atomic():
                note = do_add_note(Case.objects.get(pk=case.pk), User.objects.get(pk=agent.pk), "A", timezone.now())
                holder["a"] = Activity.objects.get(kind="note_added", data__note_id=note.pk).pk
                a_inserted.set()
                release_a.wait(TIMEOUT)
        finally:
            connection.close()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        first = event_stream(None)
        threads = [threading.Thread(target=writer_b), threading.Thread(target=writer_a)]
        try:
            await _next(first)
            for t in threads:
                t.start()
            await asyncio.to_thread(threads[0].join, TIMEOUT)  # B committed; A still open
            seen_first = await _quiet(first, 1.0)
        finally:
            await first.aclose()
        release_a.set()
        await asyncio.to_thread(threads[1].join, TIMEOUT)
        resumed = event_stream(parse_position(seen_first[-1]["id"]))
        try:
            await _next(resumed)
            return seen_first, await _quiet(resumed)
        finally:
            release_a.set()
            await resumed.aclose()

    seen_first, resumed = asyncio.run(scenario())
    assert holder["a"] < holder["b"]
    assert _ids(seen_first) == [holder["b"]]
    assert _ids(resumed) == [holder["a"]]


def _replayed(since: Position) -> list[dict[str, Any]]:
    """The events a stream resuming from ``since`` sends before it falls silent."""

    async def scenario() -> list[dict[str, Any]]:
        stream = event_stream(since)
        try:
            await _next(stream)
            return await _quiet(stream)
        finally:
            await stream.aclose()

    return asyncio.run(scenario())


def _bulk_activities(case: Case, n: int) -> list[int]:
    now = timezone.now()
    rows = Activity.objects.bulk_create(
        Activity(kind="note_added", brand_id=case.brand_id, case=case, data={"n": i}, created_at=now) for i in range(n)
    )
    return [r.pk for r in rows]


def test_a_backlog_of_several_pages_is_replayed_whole_and_in_order(case: Case) -> None:
    since = _now()
    ids = _bulk_activities(case, 3 * PAGE_SIZE + 7)

    assert _ids(_replayed(since)) == ids


def test_a_backlog_beyond_the_replay_limit_tells_the_page_to_reload(case: Case, agent: User, settings: Any) -> None:
    settings.CAREDESK_STREAM_REPLAY_LIMIT = 1000
    since = _now()
    _bulk_activities(case, 1001)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], int]:
        stream = event_stream(since)
        try:
            await _next(stream)
            reload = await _next_event(stream)
            later = await _in_thread(lambda: _add_note(case.pk, agent.pk, "after the reload"))()
            return reload, await _next_event(stream), later
        finally:
            await stream.aclose()

    reload, after, later = asyncio.run(scenario())
    assert reload["event"] == "reload" and reload["data"] == {"reason": "backlog"}
    # The reload names the position the page's fresh state starts from; events go on after it.
    assert parse_position(reload["id"]) >= _position_of(Activity.objects.order_by("id").all()[1000].pk)
    assert after["event"] == "activity" and _ids([after]) == [later]


def test_exactly_the_replay_limit_is_still_replayed(case: Case, settings: Any) -> None:
    settings.CAREDESK_STREAM_REPLAY_LIMIT = 600
    since = _now()
    ids = _bulk_activities(case, 600)

    assert _ids(_replayed(since)) == ids


@pytest.mark.parametrize("named", ["42", "x-1", "99999999999999999-0"])
def test_a_position_that_is_not_ours_starts_with_a_reload(case: Case, named: str) -> None:
    before = _now()

    async def scenario() -> dict[str, Any]:
        position = parse_position(named)
        stream = event_stream(position, resumed_unknown=position is None)
        try:
            await _next(stream)
            return await _next_event(stream)
        finally:
            await stream.aclose()

    event = asyncio.run(scenario())
    assert event["event"] == "reload" and event["data"] == {"reason": "unknown position"}
    assert before <= parse_position(event["id"]) <= _now()  # type: ignore[operator]


def test_keepalive_comment(case: Case) -> None:
    async def scenario() -> str:
        stream = event_stream(None, keepalive=0.05)
        try:
            await anext(stream)
            return await asyncio.wait_for(anext(stream), TIMEOUT)
        finally:
            await stream.aclose()

    assert asyncio.run(scenario()) == ": keep-alive\n\n"


def test_a_failed_check_at_keepalive_ends_the_stream(case: Case) -> None:
    async def refused() -> tuple[bool, frozenset[int] | None]:
        return False, frozenset()

    async def scenario() -> list[str]:
        stream = event_stream(None, Viewer(user_id=1, brands=None, recheck=refused), keepalive=0.05)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert chunks[-1] == 'event: ended\ndata: {"reason": "signed out"}\n\n'


def test_hub_restarts_a_dead_listener_and_resyncs(case: Case, agent: User) -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        hub = EventHub()
        stream = event_stream(None, hub=hub)
        try:
            await _next(stream)
            # Kill the LISTEN connection from the server side, as a database restart would.
            await _in_thread(_terminate_listeners)()
            # Written while the listener is down (or coming back): the pump or the resync delivers it.
            activity_id = await _in_thread(lambda: _add_note(case.pk, agent.pk, "during the outage"))()
            return await _next_event(stream), activity_id
        finally:
            await stream.aclose()
            assert hub.subscriber_count == 0 and not hub.listening

    event, activity_id = asyncio.run(scenario())
    assert _ids([event]) == [activity_id]


def _terminate_listeners() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'caredesk-inbox-stream' AND query LIKE 'LISTEN%%'"
        )


def test_a_slow_client_whose_queue_overflows_still_gets_everything(case: Case) -> None:
    since = _now()

    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        hub = EventHub()
        stream = event_stream(since, hub=hub)
        try:
            await _next(stream)
            ids = await _in_thread(lambda: _bulk_activities(case, 2500))()
            await asyncio.sleep(1.5)  # the hub broadcasts all of them while this client reads nothing
            return ids, await _quiet(stream)
        finally:
            await stream.aclose()

    ids, events = asyncio.run(scenario())
    assert _ids(events) == ids


def test_stream_view_resumes_from_last_event_id_before_the_page_cursor(case: Case, agent: User) -> None:
    first = Activity.objects.order_by("id").first()
    assert first is not None
    later = list(Activity.objects.filter(id__gt=first.pk).order_by("id").values_list("id", flat=True))
    assert later
    header, page_cursor = format_position(_position_of(first.pk)), format_position(_now())

    async def scenario() -> tuple[int, str, list[dict[str, Any]]]:
        client = AsyncClient()
        await client.aforce_login(agent)
        response = await client.get(f"/stream?cursor={page_cursor}", headers={"Last-Event-ID": header})
        stream = aiter(response.streaming_content)  # type: ignore[attr-defined]
        try:
            chunks = [_parse((await asyncio.wait_for(anext(stream), TIMEOUT)).decode())]
            for _ in later:
                chunks.append(_parse((await asyncio.wait_for(anext(stream), TIMEOUT)).decode()))
        finally:
            await stream.aclose()
            await sync_to_async(_close_connection)()
        return response.status_code, response["Content-Type"], chunks

    status, content_type, chunks = asyncio.run(scenario())
    assert status == 200 and content_type == "text/event-stream"
    assert _ids(chunks[1:]) == later


def test_the_page_names_the_position_it_was_rendered_at(case: Case, agent: User, client: Any) -> None:
    client.force_login(agent)
    before = _now()
    html = client.get("/").content.decode()
    cursor = html.split('data-stream-cursor="', 1)[1].split('"', 1)[0]
    assert before <= parse_position(cursor) <= _now()  # type: ignore[operator]


def test_parse_position() -> None:
    assert parse_position("42-7") == (42, 7)
    assert parse_position(" 42-0 ") == (42, 0)
    for bad in ("", None, "42", "-1", "1--2", "a-1", "1-b", "١-٢", "1-2-3", "9" * 20 + "-1"):
        assert parse_position(bad) is None, bad
