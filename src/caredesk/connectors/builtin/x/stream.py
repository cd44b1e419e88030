"""X's persistent HTTP streams: the Activity API's ``GET /2/activity/stream`` (mentions, replies, quotes, DMs of
the brand) and, where the config has keywords, the filtered stream ``GET /2/tweets/search/stream``; both with the
app's bearer token.

Both send newline-delimited JSON with ``\\r\\n`` keep-alives (blank lines, every 20 s or so). Lines are split here,
not by a library: a line that is not UTF-8 or not JSON, an over-long one, or one cut off by a disconnect is a
rejected record with its reason, never dropped. Neither stream can resume, so each connection opens the streams
first (their events wait in a queue), then catches up through the mentions timeline from the cursor's
``since_id`` and, with keywords, through recent search from each query's position (which the filtered stream
moves on to the newest match it delivers), then hands out the queued and live events, leaving out those the
catch-up delivered, with the authors that reply and quote events leave out looked up
(:mod:`caredesk.connectors.builtin.x.users`). When either stream ends the iterator ends (or raises its error),
and the runtime reconnects both: 429 → :class:`RateLimited` at ``x-rate-limit-reset``, 401 →
:class:`AuthRevoked`, 403 (app not enrolled, no access) → :class:`Refused`, so the ladder can fall to polling.

The filtered stream carries matches of every rule of the project (shared with other installations using the same
bearer token): only lines matching one of this brand's rules (tag prefix) are kept."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from caredesk.connectors.base import ConnectorError, FetchResult, MalformedPayload, Transient
from caredesk.connectors.builtin.x.activity import Events, parse_line
from caredesk.connectors.builtin.x.api import app_raise_for, headers_for
from caredesk.connectors.builtin.x.parse import id_key, users_by_id
from caredesk.connectors.builtin.x.search import advanced, keyword_post
from caredesk.connectors.builtin.x.timeline import TWEET_FIELDS, USER_FIELDS, cursor_id
from caredesk.connectors.builtin.x.users import fill_authors
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.listening import KeywordMatcher

if TYPE_CHECKING:
    from caredesk.connectors.builtin.x.provider import XProvider

log = logging.getLogger(__name__)

ACTIVITY_PATH = "/2/activity/stream"
FILTERED_PATH = "/2/tweets/search/stream"
# X sends a keep-alive every 20 s: this much silence means the connection is dead.
READ_TIMEOUT_S = 60.0
MAX_LINE = 1024 * 1024  # bytes; a longer "line" is rejected, not buffered for ever
MAX_BATCH = 500
QUEUE_SIZE = 10_000
MAX_CATCH_UP_ROUNDS = 5
SEEN_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class _Opened:
    source: str


@dataclass(frozen=True, slots=True)
class _Ended:
    source: str
    error: ConnectorError | None


@dataclass(frozen=True, slots=True)
class _Line:
    source: str
    text: str  # "" with a problem: the line could not be read
    problem: str = ""
    raw: bytes = b""


_Item = _Line | _Opened | _Ended


async def lines(chunks: AsyncIterator[bytes], source: str) -> AsyncIterator[_Line]:
    """Newline-delimited lines from ``chunks``, ``\\r\\n`` or ``\\n``; keep-alives (blank lines) left out."""
    buffer = bytearray()
    skipping = False
    async for chunk in chunks:
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            raw = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[: end + 1]
            if skipping:
                skipping = False
                continue
            if raw.strip():
                yield _decoded(source, raw)
        if len(buffer) > MAX_LINE:
            yield _Line(source, "", f"a line of the {source} stream longer than {MAX_LINE} bytes", bytes(buffer[:1000]))
            buffer.clear()
            skipping = True  # the rest of that line, up to its newline
    if buffer.strip() and not skipping:
        yield _Line(source, "", f"a line of the {source} stream cut off by the disconnect", bytes(buffer[:MAX_LINE]))


def _decoded(source: str, raw: bytes) -> _Line:
    try:
        return _Line(source, raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return _Line(source, "", f"a line of the {source} stream that is not UTF-8 ({exc.reason} at byte {exc.start})",
                     raw)


async def _read(http: httpx.AsyncClient, url: str, params: Mapping[str, str], bearer: str, source: str,
                queue: asyncio.Queue[_Item]) -> None:
    error: ConnectorError | None = None
    what = f"open the {source} stream"
    try:
        timeout = httpx.Timeout(30.0, read=READ_TIMEOUT_S)
        async with http.stream("GET", url, params=params, headers=headers_for(bearer), timeout=timeout) as response:
            if response.status_code != 200:
                await response.aread()
                app_raise_for(response, what, datetime.now(UTC))
                raise Transient(f"X answered {response.status_code} to {what}")
            await queue.put(_Opened(source))
            async for line in lines(response.aiter_bytes(), source):
                await queue.put(line)
        error = None  # X closed the stream: the runtime reconnects
    except ConnectorError as exc:
        error = exc
    except httpx.TimeoutException:
        error = Transient(f"the {source} stream was silent for {READ_TIMEOUT_S:.0f} s (no keep-alive)")
    except httpx.TransportError as exc:
        error = Transient(f"the {source} stream dropped ({type(exc).__name__}: {exc})")
    await queue.put(_Ended(source, error))


@dataclass
class _Context:
    user_id: str
    matcher: KeywordMatcher
    rule_prefix: str
    seen: dict[str, None]


def _filtered(line: _Line, position: int, events: Events, ctx: _Context, now: datetime) -> None:
    """One filtered-stream line: ``{"data": post, "includes": {"users"}, "matching_rules": [{"id", "tag"}]}``."""
    try:
        try:
            body = json.loads(line.text)
        except ValueError as exc:
            raise MalformedPayload(f"a filtered stream line that is not JSON ({exc})") from None
        if not isinstance(body, Mapping):
            raise MalformedPayload("a filtered stream line that is not a JSON object")
        if "data" not in body:
            raise MalformedPayload(f"the filtered stream sent no post: {str(body.get('errors') or body)[:300]}")
        data = body["data"]
        if isinstance(data, Mapping) and isinstance(data.get("id"), str):
            # X charges for every post it delivers, a match of another installation's rule too.
            events.usage.append(UsageEvent(Operation.POST_READ, now, (data["id"],)))
        rules = body.get("matching_rules")
        tags = [r.get("tag") for r in rules if isinstance(r, Mapping)] if isinstance(rules, list) else []
        ours = [t[len(ctx.rule_prefix):] for t in tags if isinstance(t, str) and t.startswith(ctx.rule_prefix)]
        if not ours:
            events.ignored += 1  # another installation's rule on the same project
            return
        if isinstance(data, Mapping) and isinstance(data.get("id"), str) and data["id"].isdigit():
            for key in ours:  # the rule tag's hash is the recent-search query's cursor key
                current = events.newest_matches.get(key)
                events.newest_matches[key] = max(current or data["id"], data["id"], key=id_key)
        post = keyword_post(data, users_by_id(body.get("includes")), ctx.matcher, ctx.user_id)
        if post is not None:
            events.add(post)
    except MalformedPayload as exc:
        events.reject(position, str(exc), line.text)


def _result(events: Events, cursor: dict[str, Any], seen: dict[str, None]) -> FetchResult:
    posts = [p for p in events.posts if p.external_id not in seen]
    seen.update(dict.fromkeys(p.external_id for p in posts))
    if len(seen) > SEEN_LIMIT:
        for key in list(seen)[: SEEN_LIMIT // 2]:
            del seen[key]
    return FetchResult(posts=posts, cursor=dict(cursor), rejected=events.rejected, changes=events.changes,
                       usage=events.usage)


async def stream(provider: XProvider, cursor: Mapping[str, Any], http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
    bearer = provider.bearer()
    now = datetime.now(UTC)
    api = provider.async_client()
    api.may_refresh = True  # rotated tokens travel in the first batch
    user_id = await provider.auser_id(api, http, now)
    ctx = _Context(user_id, provider.config.listening().matcher(), provider.rule_prefix(user_id), {})
    await provider.aensure_subscriptions(api, http, user_id, now)
    if api.rotated:
        # The user's token was renewed: X rotated the refresh token, so the new pair is stored before anything
        # else can fail (the old one no longer works).
        yield FetchResult(posts=[], cursor=dict(cursor), credentials=api.rotated)
    sources: dict[str, tuple[str, dict[str, str]]] = {"activity": (ACTIVITY_PATH, {})}
    if provider.config.keywords or provider.config.hashtags:
        await provider.aensure_rules(http, user_id, now)
        sources["filtered"] = (FILTERED_PATH, {"expansions": "author_id", "tweet.fields": TWEET_FIELDS,
                                               "user.fields": USER_FIELDS})
    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=QUEUE_SIZE)
    tasks = [asyncio.create_task(_read(http, provider.config.api + path, params, bearer, source, queue))
             for source, (path, params) in sources.items()]
    try:
        opened: set[str] = set()
        pending: list[_Line] = []
        while len(opened) < len(sources):
            item = await queue.get()
            if isinstance(item, _Ended):
                if item.error:
                    raise item.error
                return
            if isinstance(item, _Opened):
                opened.add(item.source)
            else:
                pending.append(item)

        state = dict(cursor)
        for _ in range(MAX_CATCH_UP_ROUNDS):
            caught = await provider.acatch_up(api, http, user_id, state, datetime.now(UTC))
            state = dict(caught.cursor)
            if caught.posts or caught.changes or caught.rejected or caught.credentials or caught.usage \
                    or caught.warnings or state != dict(cursor):
                yield caught
            ctx.seen.update(dict.fromkeys(p.external_id for p in caught.posts))
            provider.authors.learn(caught.posts)
            if not provider.unfinished(state, datetime.now(UTC)):
                break
        else:
            raise Transient("the X catch-up did not finish; reconnecting to go on from the saved cursor")
        api.may_refresh = False

        ended: _Ended | None = None
        position = 0
        while ended is None:
            items: list[_Item] = list(pending) or [await queue.get()]
            pending = []
            while len(items) < MAX_BATCH and not queue.empty():
                items.append(queue.get_nowait())
            events = Events()
            for item in items:
                if isinstance(item, _Ended):
                    ended = ended or item  # what came is handed out first, then the iterator ends
                    continue
                if isinstance(item, _Opened):
                    continue
                if item.problem:
                    events.reject(position, item.problem, item.raw.decode("utf-8", "replace"))
                elif item.source == "activity":
                    parse_line(item.text, position, events, user_id, ctx.matcher, datetime.now(UTC))
                else:
                    _filtered(item, position, events, ctx, datetime.now(UTC))
                position += 1
            if events.ignored:
                provider.ignored_events += events.ignored
                log.debug("X stream: %s events of kinds we do not read were ignored", events.ignored)
            if events.newest_mention:
                state["since_id"] = max(cursor_id(state, "since_id") or events.newest_mention, events.newest_mention,
                                        key=id_key)
            if events.posts or events.changes:
                await fill_authors(provider, http, events, datetime.now(UTC))
            if events.newest_matches:
                # A new dict: the batches handed out keep the cursor they were made with.
                state["search"] = advanced(state.get("search"), events.newest_matches)
            if events.posts or events.changes or events.rejected or events.usage:
                yield _result(events, state, ctx.seen)
        if ended.error:
            raise ended.error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
