"""Mastodon's streaming API over server-sent events: the ``user`` stream (mentions and DMs arrive as
``notification`` events) and one ``hashtag`` stream per listened hashtag (plus the public timeline if asked).

The stream has no resume position, so a (re)connection first opens every stream (events are buffered from then
on), then catches up through the REST timelines from the saved cursor, then hands out the buffered and live
events, dropping those the catch-up already delivered: nothing between two connections is lost or doubled. A
catch-up that cannot finish (rate limit) raises instead of streaming past the gap.

Frames are ``event: <name>`` / ``data: <payload>``; lines starting with ``:`` (the ``:thump`` heartbeat) are
comments. Payloads are JSON entities except ``delete``'s, a bare status id. One bad payload becomes a rejected
record of its batch; the rest of the batch and the stream go on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from caredesk.connectors.base import (
    ConnectorError,
    FetchResult,
    MalformedPayload,
    PostDeleted,
    Transient,
    unstorable,
)
from caredesk.connectors.builtin.mastodon.api import headers_for, raise_for, run_async
from caredesk.connectors.builtin.mastodon.timelines import Batch, Cursor, Sorter, catch_up, sources

# Mastodon sends a heartbeat every 15 s or so: this much silence means the connection is dead.
READ_TIMEOUT_S = 60.0
MAX_BATCH = 500  # events handed out in one batch when they come faster than they are stored
MAX_CATCH_UP_ROUNDS = 50
QUEUE_SIZE = 10_000  # events buffered while catching up; past it the socket itself pushes back
MAX_RAW = 100_000  # characters of a rejected payload kept for the operator
SEEN_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class _Opened:
    source: str


@dataclass(frozen=True, slots=True)
class _Ended:
    source: str
    error: ConnectorError | None


_Item = tuple[str, ServerSentEvent] | _Opened | _Ended


def stream_url(streaming_base: str, source: str, public_timeline: str) -> tuple[str, dict[str, str]]:
    if source == "notifications":
        return f"{streaming_base}/api/v1/streaming/user", {}
    if source == "public":
        suffix = {"local": "/local", "remote": "/remote"}.get(public_timeline, "")
        return f"{streaming_base}/api/v1/streaming/public{suffix}", {}
    return f"{streaming_base}/api/v1/streaming/hashtag", {"tag": source.removeprefix("tag:")}


async def _read(http: httpx.AsyncClient, token: str, url: str, params: Mapping[str, str], source: str,
                queue: asyncio.Queue[_Item]) -> None:
    error: ConnectorError | None = None
    try:
        timeout = httpx.Timeout(30.0, read=READ_TIMEOUT_S)
        headers = headers_for(token, {"Accept": "text/event-stream"})
        async with aconnect_sse(http, "GET", url, params=params, headers=headers, timeout=timeout) as events:
            response = events.response
            if response.status_code != 200:
                await response.aread()
                raise_for(response, f"open the {source} stream")
                raise Transient(f"Mastodon answered {response.status_code} to the {source} stream")
            await queue.put(_Opened(source))
            async for event in events.aiter_sse():
                await queue.put((source, event))
        error = Transient(f"Mastodon closed the {source} stream")
    except ConnectorError as exc:
        error = exc
    except httpx.TimeoutException:
        error = Transient(f"the {source} stream was silent for {READ_TIMEOUT_S:.0f} s (no heartbeat)")
    except SSEError as exc:
        error = Transient(f"the {source} stream is not an event stream ({exc})")
    except httpx.TransportError as exc:
        error = Transient(f"the {source} stream dropped ({type(exc).__name__}: {exc})")
    await queue.put(_Ended(source, error))


async def stream(base: str, streaming_base: str, token: str, sorter: Sorter, public_timeline: str,
                 cursor: Cursor, http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=QUEUE_SIZE)
    wanted = sources(sorter.rules, public_timeline)
    tasks = [
        asyncio.create_task(_read(http, token, *stream_url(streaming_base, source, public_timeline), source, queue))
        for source in wanted
    ]
    try:
        opened: set[str] = set()
        pending: list[tuple[str, ServerSentEvent]] = []
        while len(opened) < len(wanted):
            item = await queue.get()
            if isinstance(item, _Ended):
                raise item.error or Transient(f"the {item.source} stream ended")
            if isinstance(item, _Opened):
                opened.add(item.source)
            else:
                pending.append(item)

        seen: dict[str, None] = {}
        for _ in range(MAX_CATCH_UP_ROUNDS):
            caught = await run_async(
                http, token, catch_up(base, cursor, sorter, public_timeline, datetime.now(UTC))
            )
            cursor = caught.cursor
            seen.update(dict.fromkeys(p.external_id for p in caught.batch.posts))
            if caught.batch.posts or caught.batch.changes or caught.batch.rejected:
                yield caught.batch.result(cursor)
            if caught.error:
                raise caught.error  # streaming on now would skip what the catch-up has not read yet
            if not caught.more:
                break
        else:
            raise Transient("Mastodon catch-up did not finish; reconnecting to go on from the saved cursor")

        ended: ConnectorError | None = None
        while ended is None:
            events = pending or [await _event(queue)]
            pending = []
            while len(events) < MAX_BATCH and not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, _Ended):
                    # Hand out what came before the drop first: it is stored, and the cursor moves past it.
                    ended = item.error or Transient(f"the {item.source} stream ended")
                    break
                if not isinstance(item, _Opened):
                    events.append(item)
            batch = Batch(seen=set())
            before = cursor
            for source, event in events:
                cursor = _apply(sorter, source, event, batch, cursor, seen)
            if len(seen) > SEEN_LIMIT:
                for key in list(seen)[: SEEN_LIMIT // 2]:
                    del seen[key]
            if batch.posts or batch.changes or batch.rejected or cursor != before:
                yield batch.result(cursor)
        raise ended
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _event(queue: asyncio.Queue[_Item]) -> tuple[str, ServerSentEvent]:
    item = await queue.get()
    if isinstance(item, _Ended):
        raise item.error or Transient(f"the {item.source} stream ended")
    if isinstance(item, _Opened):
        return await _event(queue)
    return item


def _apply(sorter: Sorter, source: str, event: ServerSentEvent, batch: Batch, cursor: Cursor,
           seen: dict[str, None]) -> Cursor:
    """Sort one event into ``batch``; returns the cursor after it. A bad payload is rejected, never raised."""
    name = event.event
    if name not in ("update", "notification", "status.update", "delete", "conversation"):
        return cursor  # filters_changed, announcements, notifications_merged: nothing to store
    listening = source != "notifications"
    if name == "update" and not listening:
        return cursor  # the home timeline on the user stream: mentions of the brand come as notifications
    try:
        if name == "delete":
            status_id = event.data.strip()
            if not status_id or len(status_id) > 100 or unstorable(status_id) or not status_id.isprintable():
                raise MalformedPayload(f"delete event without a usable status id: {status_id[:40]!r}")
            batch.changes.append(PostDeleted(status_id))
            return cursor
        try:
            payload = json.loads(event.data)
        except ValueError as exc:
            raise MalformedPayload(f"{name} event data is not JSON ({exc})") from None
        if name == "status.update":
            change = sorter.edit(payload, listening=listening)
            if change:
                batch.changes.append(change)
            return cursor
        if name == "notification" and not listening:
            notification_id, posts, changes = sorter.mention(payload)
            _add_new(batch, posts, seen)
            batch.changes.extend(changes)
            return cursor.advanced("notifications", notification_id)
        if name == "conversation":
            _add_new(batch, sorter.direct(payload), seen)
            return cursor
        if name == "update" and listening:
            post = sorter.listened(payload)
            if post:
                _add_new(batch, [post], seen)
            new_id = payload.get("id") if isinstance(payload, Mapping) else None
            return cursor.advanced(source, str(new_id)) if isinstance(new_id, str | int) else cursor
        return cursor
    except MalformedPayload as exc:
        label = "user" if source == "notifications" else source
        batch.reject(f"{label} stream, {name} event: {exc}", event.data[:MAX_RAW])
        return cursor


def _add_new(batch: Batch, posts: list[Any], seen: dict[str, None]) -> None:
    fresh = [p for p in posts if p.external_id not in seen]
    seen.update(dict.fromkeys(p.external_id for p in fresh))
    batch.add(fresh)
