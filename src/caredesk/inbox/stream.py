"""Live updates for the agent UI: one PostgreSQL listener per process, fanned out to Server-Sent Events clients.

:mod:`caredesk.cases.events` sends ``NOTIFY caredesk_events`` after every commit, carrying Activity ids (or a case
id for presence). The :class:`EventHub` keeps one psycopg ``AsyncConnection`` in ``LISTEN`` and a second one for
reads; for each notification it reads the referenced Activity rows *once* and hands the resulting events to
every connected client's queue. A browser that reconnects sends ``Last-Event-ID`` and gets every Activity after it
from the database before the live events resume, so a reconnect loses nothing that committed in order.

Activity ids are taken when rows are inserted, not when their transaction commits, so a lower id can become
visible after a higher one. Live events are therefore read by the notified ids (never by "id > last") and each
client remembers the ids it already sent, so the replay/live overlap produces no duplicates.

Protocol (``text/event-stream``)::

    retry: 3000
    : connected

    id: 123
    event: activity
    data: {"case": 7, "kind": "reply_sent", "brand": 1}

    event: presence
    data: {"case": 7}

    : keep-alive
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from psycopg import pq
from psycopg.conninfo import make_conninfo

from caredesk.cases.events import CHANNEL, parse_notification
from caredesk.cases.models import Activity

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
REPLAY_LIMIT = 500
CLIENT_QUEUE_SIZE = 1000
# How long a client waits for the listener before it replays anyway; events it then misses arrive as a resync.
READY_TIMEOUT = 5.0
RETRY_MILLISECONDS = 3000
# Ids a client remembers having sent, to drop duplicates between replay, resync and live events.
SENT_MEMORY = 5000
RESYNC_OVERLAP = 200


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    id: int
    kind: str
    case_id: int | None
    brand_id: int

    def to_sse(self) -> str:
        data = json.dumps({"case": self.case_id, "kind": self.kind, "brand": self.brand_id})
        return f"id: {self.id}\nevent: activity\ndata: {data}\n\n"


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    case_id: int

    def to_sse(self) -> str:
        return f"event: presence\ndata: {json.dumps({'case': self.case_id})}\n\n"


@dataclass(frozen=True, slots=True)
class Resync:
    """Notifications may have been lost (listener restarted, client queue overflowed): re-read from the database."""


HubEvent = ActivityEvent | PresenceEvent | Resync


@functools.cache
def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def database_conninfo() -> str:
    """A libpq connection string for Django's default database (the test database under pytest-django)."""
    db = settings.DATABASES["default"]
    params: dict[str, Any] = {
        "dbname": db.get("NAME") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
    }
    raw_options = db.get("OPTIONS") or {}
    if isinstance(raw_options, dict):
        # Django's own options (pool, isolation_level, ...) are not libpq's; pass only what libpq knows.
        params.update({k: v for k, v in raw_options.items() if k in _libpq_keywords() and isinstance(v, str | int)})
    params.setdefault("application_name", "caredesk-inbox-stream")
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


_ACTIVITY_COLUMNS = "id, kind, case_id, brand_id"


def _activity_table() -> str:
    return Activity._meta.db_table


def _events_from_rows(rows: Iterable[tuple[Any, ...]]) -> list[ActivityEvent]:
    return [ActivityEvent(id=int(r[0]), kind=str(r[1]), case_id=r[2], brand_id=int(r[3])) for r in rows]


class EventHub:
    """One LISTEN connection per process (per event loop), fanned out to per-client asyncio queues.

    The listener starts with the first subscriber, stops with the last, and restarts with a back-off if its
    connection dies; after a restart every client gets a :class:`Resync` so nothing committed meanwhile is lost.
    """

    def __init__(self, conninfo: str | None = None) -> None:
        self._conninfo = conninfo
        self._queues: set[asyncio.Queue[HubEvent]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._reader: psycopg.AsyncConnection[Any] | None = None
        self._reader_lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()

    @property
    def conninfo(self) -> str:
        if self._conninfo is None:
            self._conninfo = database_conninfo()
        return self._conninfo

    @property
    def listening(self) -> bool:
        return self._ready.is_set()

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[HubEvent]]:
        """A queue that receives every event until the block exits. Waits (briefly) until LISTEN is active, so an
        activity committed after this returns is delivered."""
        queue: asyncio.Queue[HubEvent] = asyncio.Queue(maxsize=CLIENT_QUEUE_SIZE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._listen_forever(), name="caredesk-event-hub")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT)
            yield queue
        finally:
            self._queues.discard(queue)
            if not self._queues:
                await self._stop()

    async def _stop(self) -> None:
        task, self._task = self._task, None
        self._ready.clear()
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        async with self._reader_lock:
            if self._queues:
                return  # someone subscribed meanwhile and may be using the reader
            reader, self._reader = self._reader, None
            if reader is not None:
                with contextlib.suppress(Exception):
                    await reader.close()

    def _broadcast(self, events: Sequence[HubEvent]) -> None:
        for queue in list(self._queues):
            for event in events:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    # A client too slow to keep up: drop what it has queued and let it re-read from the database.
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(Resync())
                    break

    async def _listen_forever(self) -> None:
        delay = 0.2
        restarted = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    delay = 0.2
                    if restarted:
                        self._broadcast([Resync()])
                    log.debug("event hub listening on %s", CHANNEL)
                    async for notify in conn.notifies():
                        await self._dispatch(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event hub listener failed; restarting in %.1fs", delay, exc_info=True)
            self._ready.clear()
            restarted = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _dispatch(self, payload: str) -> None:
        try:
            published = parse_notification(payload)
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring malformed notification %r", payload[:200])
            return
        events: list[HubEvent] = []
        if published.activity_ids:
            try:
                events.extend(await self.fetch_by_ids(published.activity_ids))
            except Exception:
                log.warning("could not read notified activities; clients will resync", exc_info=True)
                events.append(Resync())
        if published.presence_case_id is not None:
            events.append(PresenceEvent(int(published.presence_case_id)))
        if events:
            self._broadcast(events)

    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._reader_lock:
            for attempt in (1, 2):
                if self._reader is None or self._reader.closed:
                    self._reader = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                try:
                    cursor = await self._reader.execute(sql, params)
                    return list(await cursor.fetchall())
                except psycopg.OperationalError:
                    with contextlib.suppress(Exception):
                        await self._reader.close()
                    self._reader = None
                    if attempt == 2:
                        raise
        return []  # pragma: no cover - the loop either returns or raises

    async def fetch_by_ids(self, ids: Sequence[int]) -> list[ActivityEvent]:
        rows = await self._query(
            f"SELECT {_ACTIVITY_COLUMNS} FROM {_activity_table()} WHERE id = ANY(%s) ORDER BY id",  # noqa: S608
            [list(ids)],
        )
        return _events_from_rows(rows)

    async def fetch_max_id(self) -> int:
        rows = await self._query(f"SELECT coalesce(max(id), 0) FROM {_activity_table()}", [])  # noqa: S608
        return int(rows[0][0]) if rows else 0

    async def fetch_after(self, last_id: int, limit: int = REPLAY_LIMIT) -> list[ActivityEvent]:
        """Activities after ``last_id``, oldest first; the newest ``limit`` of them when there are more."""
        rows = await self._query(
            f"SELECT * FROM (SELECT {_ACTIVITY_COLUMNS} FROM {_activity_table()} WHERE id > %s "  # noqa: S608
            "ORDER BY id DESC LIMIT %s) AS recent ORDER BY id",
            [last_id, limit],
        )
        return _events_from_rows(rows)


_hub: EventHub | None = None


def get_hub() -> EventHub:
    """The process-wide hub of the running event loop (uvicorn runs one loop; tests may run several in turn)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop or _hub.loop.is_closed():
        _hub = EventHub()
    return _hub


def parse_last_event_id(value: str | None) -> int | None:
    if not value:
        return None
    try:
        parsed = int(value.strip())
    except ValueError:
        return None
    return parsed if parsed >= 0 else None


class _SentIds:
    """The ids recently sent to one client, bounded, with the highest one."""

    def __init__(self, last_id: int) -> None:
        self.last_id = last_id
        self._ids: OrderedDict[int, None] = OrderedDict()

    def fresh(self, events: Iterable[ActivityEvent]) -> list[ActivityEvent]:
        out = []
        for event in events:
            if event.id in self._ids:
                continue
            self._ids[event.id] = None
            if len(self._ids) > SENT_MEMORY:
                self._ids.popitem(last=False)
            self.last_id = max(self.last_id, event.id)
            out.append(event)
        return out


async def event_stream(
    last_id: int | None,
    *,
    hub: EventHub | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncGenerator[str, None]:
    """The SSE body for one client. ``last_id`` is the last Activity id the client saw (None: only new events).

    The first chunk is sent once the client is subscribed, so anything committed after it reaches the client.
    """
    hub = hub or get_hub()
    async with hub.subscribe() as queue:
        if last_id is None:
            last_id = await hub.fetch_max_id()
        start_id = last_id
        sent = _SentIds(last_id)
        yield f"retry: {RETRY_MILLISECONDS}\n: connected\n\n"
        for event in sent.fresh(await hub.fetch_after(last_id)):
            yield event.to_sse()
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=keepalive)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if isinstance(item, Resync):
                # Look a little behind the highest id sent: a lower id may have committed late while we were deaf.
                # Never below where this client started: it has seen everything up to there.
                since = max(start_id, sent.last_id - RESYNC_OVERLAP)
                for event in sent.fresh(await hub.fetch_after(since)):
                    yield event.to_sse()
            elif isinstance(item, PresenceEvent):
                yield item.to_sse()
            else:
                for event in sent.fresh([item]):
                    yield event.to_sse()
