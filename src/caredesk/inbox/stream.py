"""Live updates for the agent UI: one PostgreSQL listener per process, fanned out to Server-Sent Events clients.

**What a client is promised.** Every Activity of the brands it may see, each once, in the order positions are
given below, from the position it names; or, when that is not possible (the backlog is too long, or the position is
unknown), an ``event: reload`` that tells the page to re-read its state, after which events continue from there.
Nothing is skipped silently.

**Positions, and why ids alone are not enough.** Activity ids are taken when rows are inserted, not when their
transaction commits, so a lower id can become visible after a higher one, and "every id above the last one seen"
misses it. Each row also records its transaction id (``txid``, filled by the database; migration
``cases.0008``). An event's position is ``(txid, id)``, and events are read only *below the horizon*: the oldest
transaction still running in this database (from ``pg_current_snapshot()``). Every transaction below it has ended
(or runs in another database and cannot write here), and every transaction that writes later has a txid at or above
it, so once position *p* is delivered no row can appear behind *p*. The cost is that an event waits for every
transaction of this database older than its own to end (normally milliseconds; a session left idle in a transaction
holds the stream back, and the hub logs which one).

**Machinery.** :mod:`caredesk.cases.events` sends ``NOTIFY caredesk_events`` after every commit. The
:class:`EventHub` keeps one connection in ``LISTEN``; notifications only wake its pump, which reads every Activity
after the hub's own position up to the horizon, once, and hands the events to every client's queue (it also polls
every few seconds, so a lost notification delays an event but never loses it). A client first subscribes, then
replays from its own position to the horizon from the database, then takes live events, skipping positions it
already passed; if its queue overflows or the listener restarts it replays again from its position.

**Who hears what.** Each client has a :class:`Viewer`: the brands whose events it may receive (the access layer's
``visible_brand_ids``), re-checked on every keep-alive and at once when the user's sessions or rights change
(``publish_user_changed``: logout, deactivation, memberships). When the check fails the stream sends
``event: ended`` and closes.

Protocol (``text/event-stream``)::

    retry: 3000
    : connected

    id: 10512-123
    event: activity
    data: {"case": 7, "kind": "reply_sent", "brand": 1}

    id: 10600-0
    event: reload
    data: {"reason": "backlog"}

    event: presence
    data: {"case": 7}

    event: ended
    data: {"reason": "signed out"}

    : keep-alive
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from psycopg import pq
from psycopg.conninfo import make_conninfo

from caredesk.cases.events import CHANNEL, parse_notification
from caredesk.cases.models import Activity

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
CLIENT_QUEUE_SIZE = 1000
# How long a client waits for the listener before it replays anyway; events it then misses arrive as a resync.
READY_TIMEOUT = 5.0
RETRY_MILLISECONDS = 3000
# Rows read per query, by the hub and by a client's replay.
PAGE_SIZE = 500
# The pump reads again this often while notified events wait below the horizon, and this often in any case.
PENDING_POLL_SECONDS = 0.1
SAFETY_POLL_SECONDS = 5.0
# An event held back by an older transaction for this long is logged (once per transaction).
HELD_WARNING_SECONDS = 10.0

Position = tuple[int, int]  # (transaction id, activity id)


def replay_limit() -> int:
    """The most events one client is replayed; beyond it the page is told to reload its state instead."""
    return int(getattr(settings, "CAREDESK_STREAM_REPLAY_LIMIT", 10_000))


def format_position(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def parse_position(value: str | None) -> Position | None:
    """A position as sent in ``Last-Event-ID`` or ``?cursor=``; None for anything else (an old numeric id too)."""
    if not value:
        return None
    txid, sep, activity_id = value.strip().partition("-")
    if not sep or not txid.isascii() or not txid.isdigit() or not activity_id.isascii() or not activity_id.isdigit():
        return None
    if len(txid) > 19 or len(activity_id) > 19:  # beyond a 64-bit value: not one of ours
        return None
    return int(txid), int(activity_id)


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    position: Position
    kind: str
    case_id: int | None
    brand_id: int

    @property
    def id(self) -> int:
        return self.position[1]

    def to_sse(self) -> str:
        data = json.dumps({"case": self.case_id, "kind": self.kind, "brand": self.brand_id})
        return f"id: {format_position(self.position)}\nevent: activity\ndata: {data}\n\n"


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    case_id: int
    brand_id: int | None

    def to_sse(self) -> str:
        return f"event: presence\ndata: {json.dumps({'case': self.case_id})}\n\n"


@dataclass(frozen=True, slots=True)
class UserChanged:
    """This user's sessions or rights changed: their streams check again."""

    user_id: int


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been dropped for this client (listener restarted, queue overflowed): replay from its position."""


HubEvent = ActivityEvent | PresenceEvent | UserChanged | Resync


@dataclass(frozen=True, slots=True)
class Page:
    events: list[ActivityEvent]
    horizon: int  # the oldest transaction still running when the page was read
    next_txid: int  # the next transaction id to be assigned then


def _reload_sse(position: Position, reason: str) -> str:
    return f"id: {format_position(position)}\nevent: reload\ndata: {json.dumps({'reason': reason})}\n\n"


def _ended_sse(reason: str) -> str:
    return f"event: ended\ndata: {json.dumps({'reason': reason})}\n\n"


@functools.cache
def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def database_conninfo() -> str:
    """A libpq connection string for Django's default database (the test database under pytest-django), or for
    ``DATABASE_DIRECT_URL`` when that is set: LISTEN needs a session of its own, which a transaction pooler
    (PgBouncer) in front of the default database does not give."""
    db = getattr(settings, "CAREDESK_DIRECT_DATABASE", None) or settings.DATABASES["default"]
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


def _activity_table() -> str:
    return Activity._meta.db_table


# One statement, so the horizon and the rows come from the same snapshot (``pg_current_snapshot()`` is the statement's
# own). The horizon is the oldest transaction still running *in this database*: the snapshot is cluster-wide, and a
# transaction that pg_stat_activity shows running in another database cannot write our rows, so it need not hold our
# events back. Any transaction not shown there (ended since, or invisible to this role) still counts, so the horizon
# errs towards waiting, never towards skipping. pg_stat_activity has 32-bit xids; within 2^31 of now they map to one
# 64-bit id. The LEFT JOIN returns the horizon even when no row is there; positions compare as a row value, which
# the (txid, id) index serves in order.
_HORIZON_CTE = """
WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
elsewhere AS MATERIALIZED (
    SELECT backend_xid::text::bigint AS xid32 FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL
      AND datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database())
),
horizon AS MATERIALIZED (
    SELECT coalesce(
        (SELECT min(x) FROM pg_snapshot_xip((SELECT s FROM snap)) AS x
         WHERE NOT EXISTS (SELECT 1 FROM elsewhere WHERE xid32 = x::text::bigint %% 4294967296)),
        (SELECT pg_snapshot_xmax(s) FROM snap)
    ) AS h,
    (SELECT pg_snapshot_xmax(s) FROM snap) AS next_txid
)
"""

# The position of "now", for a page about to be rendered.
HORIZON_SQL = _HORIZON_CTE.replace("%%", "%") + "SELECT h::text FROM horizon"  # noqa: S608 (constants)

_PAGE_SQL = _HORIZON_CTE + """
SELECT horizon.h::text, horizon.next_txid::text, a.txid::text, a.id, a.kind, a.case_id, a.brand_id
FROM horizon LEFT JOIN LATERAL (
    SELECT txid, id, kind, case_id, brand_id FROM {table}
    WHERE (txid, id) > (%s::text::xid8, %s) AND txid < horizon.h {brand_filter}
    ORDER BY txid, id
    LIMIT %s
) AS a ON true
ORDER BY a.txid, a.id
"""  # noqa: S608 (constants; the brand filter is a placeholder)

_BACKLOG_SQL = """
SELECT count(*) FROM (
    SELECT 1 FROM {table} WHERE (txid, id) > (%s::text::xid8, %s) {brand_filter} LIMIT %s
) AS backlog
"""

_HELD_BY_SQL = """
SELECT pid, state, now() - xact_start FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND backend_xid::text::bigint %% 4294967296 = %s::bigint %% 4294967296
"""


def _brand_clause(brands: frozenset[int] | None, params: list[Any]) -> str:
    if brands is None:
        return ""
    params.append(sorted(brands))
    return "AND brand_id = ANY(%s)"


class EventHub:
    """One LISTEN connection and one reader per process (per event loop), fanned out to per-client queues.

    The listener and the pump start with the first subscriber and stop with the last; the listener restarts with a
    back-off if its connection dies, after which every client replays from its own position.
    """

    def __init__(self, conninfo: str | None = None) -> None:
        self._conninfo = conninfo
        self._queues: set[asyncio.Queue[HubEvent]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._reader: psycopg.AsyncConnection[Any] | None = None
        self._reader_lock = asyncio.Lock()
        self._position: Position | None = None
        # Notified activity ids not read yet (they wait below the horizon), with when they were notified.
        self._pending: dict[int, float] = {}
        self._warned_txids: set[int] = set()
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
        """A queue that receives every event from now on. Waits (briefly) until the hub listens and has its
        position, so a client that replays after this returns and then takes the queue misses nothing."""
        queue: asyncio.Queue[HubEvent] = asyncio.Queue(maxsize=CLIENT_QUEUE_SIZE)
        self._queues.add(queue)
        if self._listener is None or self._listener.done():
            self._ready.clear()
            self._listener = asyncio.create_task(self._listen_forever(), name="caredesk-event-hub-listen")
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._pump_forever(), name="caredesk-event-hub-pump")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT)
            yield queue
        finally:
            self._queues.discard(queue)
            if not self._queues:
                await self._stop()

    async def _stop(self) -> None:
        tasks = [t for t in (self._listener, self._pump) if t is not None]
        self._listener = self._pump = None
        self._ready.clear()
        for task in tasks:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        async with self._reader_lock:
            if self._queues:
                return  # someone subscribed meanwhile and may be using the reader
            self._position = None  # a later start begins at the horizon of its own time
            self._pending.clear()
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
                    # A client too slow to keep up: drop what it has queued and let it replay from the database.
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(Resync())
                    break

    async def _listen_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self._position is None:
                        page = await self.read_page((0, 0), None, limit=0)
                        self._position = (page.horizon, 0)
                    self._ready.set()
                    delay = 0.2
                    # Clients that subscribed while the hub was deaf (or starting) replay from their positions.
                    self._broadcast([Resync()])
                    self._wake.set()
                    log.debug("event hub listening on %s", CHANNEL)
                    async for notify in conn.notifies():
                        self._dispatch(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event hub listener failed; restarting in %.1fs", delay, exc_info=True)
            self._ready.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _dispatch(self, payload: str) -> None:
        try:
            published = parse_notification(payload)
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring malformed notification %r", payload[:200])
            return
        now = time.monotonic()
        for activity_id in published.activity_ids:
            self._pending.setdefault(activity_id, now)
        if published.activity_ids:
            self._wake.set()
        events: list[HubEvent] = []
        if published.presence_case_id is not None:
            events.append(PresenceEvent(published.presence_case_id, published.presence_brand_id))
        if published.user_id is not None:
            events.append(UserChanged(published.user_id))
        if events:
            self._broadcast(events)

    async def _pump_forever(self) -> None:
        while True:
            timeout = PENDING_POLL_SECONDS if self._pending else SAFETY_POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._position is None:
                continue  # the listener sets it once connected
            try:
                await self._pump_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event hub could not read activities; retrying", exc_info=True)
                await asyncio.sleep(1.0)

    async def _pump_once(self) -> None:
        while True:
            assert self._position is not None
            page = await self.read_page(self._position, None)
            if page.events:
                self._position = page.events[-1].position
                for event in page.events:
                    self._pending.pop(event.id, None)
                self._broadcast(page.events)
            if len(page.events) < PAGE_SIZE:
                break
        if self._pending and time.monotonic() - min(self._pending.values()) > 1.0:
            await self._settle_pending(page.horizon)

    async def _settle_pending(self, horizon: int) -> None:
        """Forget notified ids that need no more waiting, and say which transaction holds the others back."""
        assert self._position is not None
        rows = await self._query(
            f"SELECT id, txid::text FROM {_activity_table()} WHERE id = ANY(%s)",  # noqa: S608
            [list(self._pending)],
        )
        # A notified id can be gone (its case was deleted) or already read (a poll got there before the notice).
        waiting = {int(i) for i, txid in rows if (int(txid), int(i)) > self._position}
        self._pending = {k: v for k, v in self._pending.items() if k in waiting}
        if not self._pending or time.monotonic() - min(self._pending.values()) < HELD_WARNING_SECONDS:
            return
        if horizon in self._warned_txids:
            return
        self._warned_txids.add(horizon)
        held_by = await self._query(_HELD_BY_SQL, [horizon])
        who = ", ".join(f"pid {pid} ({state}, open {age})" for pid, state, age in held_by) or "another database"
        log.warning("live events wait for transaction %s to end: %s", horizon, who)

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

    async def read_page(
        self, after: Position, brands: frozenset[int] | None, *, limit: int = PAGE_SIZE
    ) -> Page:
        """Activities after ``after`` and below the horizon, in position order (of ``brands`` only, unless None)."""
        params: list[Any] = [str(after[0]), after[1]]
        sql = _PAGE_SQL.format(table=_activity_table(), brand_filter=_brand_clause(brands, params))
        params.append(limit)
        rows = await self._query(sql, params)
        events = [
            ActivityEvent(position=(int(r[2]), int(r[3])), kind=str(r[4]), case_id=r[5], brand_id=int(r[6]))
            for r in rows
            if r[3] is not None
        ]
        return Page(events=events, horizon=int(rows[0][0]), next_txid=int(rows[0][1]))

    async def count_after(self, after: Position, brands: frozenset[int] | None, *, limit: int) -> int:
        """How many activities (of ``brands``) come after ``after``, counting no further than ``limit``."""
        params: list[Any] = [str(after[0]), after[1]]
        sql = _BACKLOG_SQL.format(table=_activity_table(), brand_filter=_brand_clause(brands, params))
        params.append(limit)
        rows = await self._query(sql, params)
        return int(rows[0][0])

    async def horizon(self) -> Position:
        """The position of "now": every event after it is still to come."""
        page = await self.read_page((0, 0), None, limit=0)
        return (page.horizon, 0)


_hub: EventHub | None = None


def get_hub() -> EventHub:
    """The process-wide hub of the running event loop (uvicorn runs one loop; tests may run several in turn)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop or _hub.loop.is_closed():
        _hub = EventHub()
    return _hub


@dataclass
class Viewer:
    """Who a stream is for: the brands whose events it carries (None: every brand), and how to check again.

    ``recheck`` returns the brands now, or None when the stream must end (logged out, deactivated); it runs on
    every keep-alive and whenever this user's sessions or rights change.
    """

    user_id: int | None
    brands: frozenset[int] | None
    recheck: Callable[[], Awaitable[tuple[bool, frozenset[int] | None]]] | None = None
    ended_reason: str = field(default="signed out")

    def allows(self, brand_id: int | None) -> bool:
        return self.brands is None or (brand_id is not None and brand_id in self.brands)

    async def still_allowed(self) -> bool:
        if self.recheck is None:
            return True
        allowed, brands = await self.recheck()
        if allowed:
            self.brands = brands
        return allowed


EVERYONE = Viewer(user_id=None, brands=None)


async def event_stream(
    position: Position | None,
    viewer: Viewer = EVERYONE,
    *,
    resumed_unknown: bool = False,
    hub: EventHub | None = None,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncGenerator[str, None]:
    """The SSE body for one client, from ``position`` (None: from now on). ``resumed_unknown`` says the client
    named a position that is not one of ours, so it starts with a reload.

    The first chunk is sent once the client is subscribed, so anything committed after it reaches the client.
    """
    hub = hub or get_hub()
    async with hub.subscribe() as queue:
        # "Now" is fixed before the first chunk: whatever commits after the client has it is delivered.
        unknown = position is None and resumed_unknown
        if position is None:
            position = await hub.horizon()
        yield f"retry: {RETRY_MILLISECONDS}\n: connected\n\n"
        if unknown:
            yield _reload_sse(position, "unknown position")
        cursor = [position]

        async def replay() -> AsyncGenerator[str, None]:
            limit = replay_limit()
            backlog = await hub.count_after(cursor[0], viewer.brands, limit=limit + 1)
            if backlog > limit:
                cursor[0] = max(cursor[0], await hub.horizon())
                yield _reload_sse(cursor[0], "backlog")
                return
            while True:
                page = await hub.read_page(cursor[0], viewer.brands)
                if cursor[0][0] > page.next_txid:
                    # A position from the future: another database, or a restored backup. State is unknown.
                    cursor[0] = (page.horizon, 0)
                    yield _reload_sse(cursor[0], "unknown position")
                    return
                for event in page.events:
                    cursor[0] = event.position
                    yield event.to_sse()
                if len(page.events) < PAGE_SIZE:
                    return

        async for chunk in replay():
            yield chunk
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=keepalive)
            except TimeoutError:
                if not await viewer.still_allowed():
                    yield _ended_sse(viewer.ended_reason)
                    return
                yield ": keep-alive\n\n"
                continue
            if isinstance(item, Resync):
                async for chunk in replay():
                    yield chunk
            elif isinstance(item, UserChanged):
                if item.user_id == viewer.user_id and not await viewer.still_allowed():
                    yield _ended_sse(viewer.ended_reason)
                    return
            elif isinstance(item, PresenceEvent):
                if viewer.allows(item.brand_id):
                    yield item.to_sse()
            elif item.position > cursor[0]:
                cursor[0] = item.position
                if viewer.allows(item.brand_id):
                    yield item.to_sse()
