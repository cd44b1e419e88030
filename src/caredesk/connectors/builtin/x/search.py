"""Keyword listening beyond mentions: the queries X is asked (recent search when polling, filtered-stream rules
when streaming), and the recent-search read.

Both share one query language and a length limit (512 characters for self-serve access), so the keywords and
hashtags are split over as many queries as it takes: ``(acme OR "acme phone" OR #acmefail) -"orange juice"
-is:retweet -from:<brand id>``. A match whose author did not address the brand is a listening lead
(``summoned=False``); X's rules forbid answering it through the API."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from caredesk.connectors.base import ConnectorError, NormalizedPost
from caredesk.connectors.builtin.x.api import Call, Conversation
from caredesk.connectors.builtin.x.config import XConfig
from caredesk.connectors.builtin.x.parse import id_key, mentions_user, post_from_tweet
from caredesk.connectors.builtin.x.timeline import Timeline, cursor_id, read_timeline
from caredesk.connectors.costs.prices import Operation
from caredesk.connectors.listening import KeywordMatcher

# Recent search covers the last seven days and refuses (400) a since_id older than that; a little margin for the
# clocks and the time the read takes.
SEARCH_WINDOW = timedelta(days=7) - timedelta(minutes=10)
SNOWFLAKE_EPOCH_MS = 1288834974657  # X's ids carry their creation time: ms since this, shifted left 22 bits
SEARCH_RETRY = "search_retry_at"  # cursor key: no recent search before this time (X's rate limit)
# A search's outcome: its reads and cursor part, the error it failed with, or None when it was not due.
Searched = tuple[list[Timeline], dict[str, Any]] | ConnectorError | None


def term(value: str, *, hashtag: bool = False) -> str:
    """One keyword as a query term: a hashtag as ``#tag``; anything but a plain word as a quoted phrase (X's
    query language has no escape for a double quote inside one, so those are dropped)."""
    if hashtag:
        return "#" + value.lstrip("#")
    cleaned = " ".join(value.replace('"', " ").split())
    plain = cleaned.replace("_", "").isalnum()
    return cleaned if plain and cleaned.lower() not in ("or", "and") else f'"{cleaned}"'


def build_queries(config: XConfig, user_id: str, limit: int) -> list[str]:
    """The keywords and hashtags as few queries of at most ``limit`` characters as possible; empty when there
    are none. Exclusions go in as long as they leave room for the terms (the rest are applied here)."""
    terms = list(dict.fromkeys([*(term(k) for k in config.keywords),
                                *(term(h, hashtag=True) for h in config.hashtags)]))
    if not terms:
        return []
    fixed = " -is:retweet" + (f" -from:{user_id}" if user_id else "")
    longest = max(len(t) for t in terms) + 2  # its parentheses
    suffix = fixed
    for phrase in config.exclude:
        extra = " -" + term(phrase)
        if len(suffix) + len(extra) > limit // 2:  # half the query at most: the terms need the room
            break
        suffix += extra
    if longest + len(suffix) > limit:
        raise ValueError(f"an X query may have at most {limit} characters; a keyword is too long for it")
    queries: list[str] = []
    group: list[str] = []
    for item in terms:
        candidate = [*group, item]
        if group and len("(" + " OR ".join(candidate) + ")" + suffix) > limit:
            queries.append("(" + " OR ".join(group) + ")" + suffix)
            candidate = [item]
        group = candidate
    queries.append("(" + " OR ".join(group) + ")" + suffix)
    return queries


def query_key(query: str) -> str:
    """The cursor key of one query's position: the same query keeps its place across restarts; changed
    keywords start afresh (from the latest page)."""
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def keyword_post(tweet: Any, users: Mapping[str, Mapping[str, Any]], matcher: KeywordMatcher, user_id: str, *,
                 author_optional: bool = False) -> NormalizedPost | None:
    """A post X matched on our keywords; None for the brand's own and for one an exclusion cancels."""
    post = post_from_tweet(tweet, users, matcher, summoned=False, author_optional=author_optional)
    if post.author.external_id == user_id:
        return None
    if mentions_user(post.raw, user_id):
        return dataclasses.replace(post, summoned=True)
    if matcher.excluded(post.text):
        return None
    return post


def _id_at(when: datetime) -> str:
    return str(max(int(when.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS, 0) << 22)


def within_window(position: Mapping[str, Any], now: datetime) -> Mapping[str, Any]:
    """A query's position whose ids X still accepts: one older than the seven days recent search covers (a quiet
    query, a listener stopped for a week) starts at the window's oldest id instead of being refused for ever;
    what lies before it cannot be read any more."""
    floor = _id_at(now - SEARCH_WINDOW)
    since = cursor_id(position, "since_id")
    # Ids below 2**32 are not time-based (X has made none since 2010): nothing to tell from them.
    if not since or id_key(since) < 1 << 32 or id_key(since) >= id_key(floor):
        return position
    until = cursor_id(position, "until_id")
    newest = cursor_id(position, "newest")
    if until and id_key(until) > id_key(floor):
        return {"since_id": floor, "until_id": until, "newest": newest or until}
    return {"since_id": newest if newest and id_key(newest) > id_key(floor) else floor}


def search(config: XConfig, user_id: str, cursor: Mapping[str, Any], limit: int,
           now: datetime) -> Conversation[tuple[list[Timeline], dict[str, Any]]]:
    """``GET /2/tweets/search/recent`` for each query, from its own ``since_id``; the cursor part to save
    (``{"search": {<query key>: {...}}}``, only current queries) comes back with the reads."""
    matcher = config.listening().matcher()
    saved = cursor.get("search")
    positions: Mapping[str, Any] = saved if isinstance(saved, Mapping) else {}
    timelines: list[Timeline] = []
    kept: dict[str, Any] = {}

    def sort(tweet: Any, users: Mapping[str, Mapping[str, Any]]) -> NormalizedPost | None:
        return keyword_post(tweet, users, matcher, user_id)

    for query in build_queries(config, user_id, limit):
        key = query_key(query)
        position = positions.get(key)
        call = Call("GET", "/2/tweets/search/recent", "search recent posts for the keywords", params={"query": query})
        start = within_window(position, now) if isinstance(position, Mapping) else {}
        timeline = yield from read_timeline(call, start, sort, Operation.POST_READ, now, page_param="next_token")
        timelines.append(timeline)
        kept[key] = timeline.cursor
    return timelines, ({"search": kept} if kept else {})


def search_due(config: XConfig, cursor: Mapping[str, Any], now: datetime) -> bool:
    """Whether recent search runs now: there are keywords, and X's rate limit of an earlier search is over."""
    if not (config.keywords or config.hashtags):
        return False
    retry = cursor.get(SEARCH_RETRY)
    try:
        return not isinstance(retry, str) or datetime.fromisoformat(retry) <= now
    except ValueError:
        return True


def advanced(positions: Any, newest: Mapping[str, str]) -> dict[str, Any]:
    """The recent-search positions (``cursor["search"]``) moved on to the newest post the filtered stream
    delivered for each query (the rule tag's hash is the query's key), so the catch-up after a reconnection
    starts there. A position still paging back (``until_id``) is left to finish first."""
    kept = dict(positions) if isinstance(positions, Mapping) else {}
    for key, tweet_id in newest.items():
        position = kept.get(key)
        position = position if isinstance(position, Mapping) else {}
        if cursor_id(position, "until_id"):
            continue
        since = cursor_id(position, "since_id")
        kept[key] = {"since_id": max(since or tweet_id, tweet_id, key=id_key)}
    return kept


def wanted_rules(queries: Sequence[str], tag_prefix: str) -> dict[str, str]:
    """Filtered-stream rules for ``queries``: tag → value; the tag carries a hash of the value, so a rule is
    recognised as ours and as current without any state kept here."""
    return {f"{tag_prefix}{query_key(q)}": q for q in queries}
