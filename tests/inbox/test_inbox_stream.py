"""The live stream: events for activities committed after subscribing, Last-Event-ID replay, presence, and
activities whose transactions commit out of id order. These need real commits (``transactional_db``) because
PostgreSQL delivers NOTIFY only on commit."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import AsyncClient
from django.utils import timezone

from caredesk.cases.actions import do_add_note, do_resolve_case, lock_case
from caredesk.cases.models import Activity, Case
from caredesk.inbox.actions import do_heartbeat
from caredesk.inbox.stream import EventHub, event_stream, parse_last_event_id
from factories import ingest, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")
TIMEOUT = 10.0


def _in_thread(fn: Callable[[], T]) -> Callable[[], Any]:
    """Run ``fn`` in a worker thread with its own connection, closed afterwards (so the test database can be
    dropped at the end of the session)."""

    def run() -> T:
        try:
            return fn()
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


def _close_connection() -> None:
    connection.close()


def _parse(chunk: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for line in chunk.strip("\n").split("\n"):
        if line.startswith(":"):
            fields.setdefault("comment", line[1:].strip())
            continue
        key, _, value = line.partition(": ")
        fields[key] = value
    if "data" in fields:
        fields["data"] = json.loads(fields["data"])
    return fields


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
    assert event["id"] == str(activity_id)
    assert event["data"] == {"case": case.pk, "kind": "note_added", "brand": case.brand_id}


def test_last_event_id_replays_what_was_missed(case: Case, agent: User) -> None:
    seen = Activity.objects.order_by("id").last()
    assert seen is not None
    missed = [_add_note(case.pk, agent.pk, f"note {i}") for i in range(3)]
    with transaction.atomic():
        do_resolve_case(lock_case(case.pk), agent, timezone.now())
    resolved = Activity.objects.get(kind="case_status").pk

    async def scenario() -> list[dict[str, Any]]:
        stream = event_stream(seen.pk)
        try:
            await _next(stream)
            return [await _next_event(stream) for _ in range(4)]
        finally:
            await stream.aclose()

    events = asyncio.run(scenario())
    assert [int(e["id"]) for e in events] == [*missed, resolved]
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


def test_out_of_order_commits_are_all_delivered(case: Case, agent: User) -> None:
    """Transaction A takes the lower id but commits after B: both events arrive, none twice."""
    ingest(make_installation(), make_post("another customer", external_id="s2", author_id="u2", handle="dana"))
    other_case = Case.objects.exclude(pk=case.pk).get()  # B writes to another case, so A's row lock is no obstacle
    inserted = threading.Event()
    release = threading.Event()
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

    async def scenario() -> list[dict[str, Any]]:
        stream = event_stream(None)
        writer = threading.Thread(target=slow_writer)
        try:
            await _next(stream)
            writer.start()
            await asyncio.to_thread(inserted.wait, TIMEOUT)
            holder["fast"] = await _in_thread(lambda: _add_note(other_case.pk, agent.pk, "fast"))()
            first = await _next_event(stream)
            release.set()
            second = await _next_event(stream)
            return [first, second]
        finally:
            release.set()
            await asyncio.to_thread(writer.join, TIMEOUT)
            await stream.aclose()

    first, second = asyncio.run(scenario())
    assert holder["slow"] < holder["fast"]
    assert [int(first["id"]), int(second["id"])] == [holder["fast"], holder["slow"]]


def test_keepalive_comment(case: Case) -> None:
    async def scenario() -> str:
        stream = event_stream(None, keepalive=0.05)
        try:
            await anext(stream)
            return await asyncio.wait_for(anext(stream), TIMEOUT)
        finally:
            await stream.aclose()

    assert asyncio.run(scenario()) == ": keep-alive\n\n"


def test_hub_restarts_a_dead_listener_and_resyncs(case: Case, agent: User) -> None:
    async def scenario() -> tuple[dict[str, Any], int]:
        hub = EventHub()
        stream = event_stream(None, hub=hub)
        try:
            await _next(stream)
            # Kill the LISTEN connection from the server side, as a database restart would.
            await _in_thread(_terminate_listeners)()
            # Written while the listener is down (or coming back): the resync after the restart delivers it.
            activity_id = await _in_thread(lambda: _add_note(case.pk, agent.pk, "during the outage"))()
            return await _next_event(stream), activity_id
        finally:
            await stream.aclose()
            assert hub.subscriber_count == 0 and not hub.listening

    event, activity_id = asyncio.run(scenario())
    assert int(event["id"]) == activity_id


def _terminate_listeners() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'caredesk-inbox-stream' AND query LIKE 'LISTEN%%'"
        )


def test_stream_view_honours_last_event_id(case: Case, agent: User) -> None:
    first = Activity.objects.order_by("id").first()
    assert first is not None
    later = list(Activity.objects.filter(id__gt=first.pk).order_by("id").values_list("id", flat=True))
    assert later

    async def scenario() -> tuple[int, str, list[dict[str, Any]]]:
        client = AsyncClient()
        await client.aforce_login(agent)
        response = await client.get("/stream?last_id=0", headers={"Last-Event-ID": str(first.pk)})
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
    assert [int(c["id"]) for c in chunks[1:]] == later


def test_parse_last_event_id() -> None:
    assert parse_last_event_id("42") == 42
    assert parse_last_event_id(" 7 ") == 7
    assert parse_last_event_id("") is None
    assert parse_last_event_id("-1") is None
    assert parse_last_event_id("abc") is None
    assert parse_last_event_id(None) is None
