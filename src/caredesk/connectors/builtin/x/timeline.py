"""X's paged reads, newest first: the brand's mentions timeline (polls and a stream's catch-up) and recent search
(keyword polls). Written once as :data:`Conversation` generators, so the poll (sync client) and the stream's
catch-up (async client) share the paging, the parsing and the cursor rules.

X pages newest first, so a catch-up longer than :data:`MAX_PAGES` cannot simply save the newest id (the older
pages would be skipped): the cursor then keeps the floor (``since_id``), the oldest id read (``until_id``) and the
newest (``newest``), and the next read goes on below ``until_id`` until the floor is reached."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from caredesk.connectors.base import (
    FetchResult,
    MalformedPayload,
    NormalizedPost,
    PostEdited,
    RejectedRecord,
    Transient,
)
from caredesk.connectors.builtin.x.api import Call, Conversation, json_of
from caredesk.connectors.builtin.x.parse import id_key, post_from_tweet, split_edits, users_by_id
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.listening import KeywordMatcher

TWEET_FIELDS = ("created_at,conversation_id,in_reply_to_user_id,referenced_tweets,lang,edit_history_tweet_ids,"
                "author_id,note_tweet,entities")
USER_FIELDS = "username,name,public_metrics,verified"
MAX_PAGES = 10  # of 100 posts each, per read
# One post from a page → the post to keep, or None to leave it out (the brand's own); raises MalformedPayload.
Sort = Callable[[Any, Mapping[str, Mapping[str, Any]]], NormalizedPost | None]


def cursor_id(cursor: Mapping[str, Any], name: str) -> str:
    value = cursor.get(name)
    return value if isinstance(value, str) and value.isdigit() else ""


@dataclass
class Timeline:
    posts: list[NormalizedPost] = field(default_factory=list)
    changes: list[PostEdited] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)
    remaining: int | None = None
    usage: list[UsageEvent] = field(default_factory=list)
    read: int = 0  # records read, for the positions of rejects in a combined batch


def read_timeline(call: Call, cursor: Mapping[str, Any], sort: Sort, operation: Operation, now: datetime, *,
                  page_param: str = "pagination_token") -> Conversation[Timeline]:
    """Pages of ``call`` newer than ``cursor["since_id"]`` (the first read: the latest page only); each page's
    post ids are billed as ``operation``."""
    floor = cursor_id(cursor, "since_id")
    until = cursor_id(cursor, "until_id") if floor else ""
    newest = (cursor_id(cursor, "newest") if until else "") or floor
    params: dict[str, Any] = {"max_results": 100, "expansions": "author_id", "tweet.fields": TWEET_FIELDS,
                              "user.fields": USER_FIELDS, **(call.params or {})}
    if floor:
        params["since_id"] = floor
    if until:
        params["until_id"] = until
    timeline = Timeline()
    posts: list[NormalizedPost] = []
    oldest = until
    position = 0
    finished = False
    for _ in range(MAX_PAGES):
        response = yield Call(call.method, call.path, call.what, params=dict(params))
        header = response.headers.get("x-rate-limit-remaining", "").strip()
        timeline.remaining = int(header) if header.isdigit() else timeline.remaining
        body = json_of(response, call.what)
        if not isinstance(body, Mapping):
            raise Transient(f"X's answer to {call.what} is not a JSON object")
        users = users_by_id(body.get("includes"))
        data = body.get("data") or []
        billed: list[str] = []
        for tweet in data if isinstance(data, list) else []:
            tweet_id = tweet.get("id") if isinstance(tweet, Mapping) else None
            if isinstance(tweet_id, str) and tweet_id.isdigit():
                billed.append(tweet_id)
                # A broken record still moves the cursor: it is rejected once, not on every read.
                newest = max(newest or tweet_id, tweet_id, key=id_key)
                oldest = min(oldest or tweet_id, tweet_id, key=id_key)
            try:
                post = sort(tweet, users)
            except MalformedPayload as exc:
                timeline.rejected.append(RejectedRecord(position=position, reason=str(exc), raw=tweet))
            else:
                if post is not None:
                    posts.append(post)
            position += 1
        if billed:
            timeline.usage.append(UsageEvent(operation, now, tuple(billed)))
        meta = body.get("meta")
        token = meta.get("next_token") if isinstance(meta, Mapping) else None
        if not floor or not isinstance(token, str) or not token:
            finished = True
            break
        params[page_param] = token
    timeline.read = position
    posts.sort(key=lambda p: id_key(p.external_id))
    timeline.posts, timeline.changes = split_edits(posts)
    if finished:
        timeline.cursor = {"since_id": newest} if newest else {}
    else:
        timeline.cursor = {"since_id": floor, "until_id": oldest, "newest": newest}
    return timeline


def mentions(user_id: str, cursor: Mapping[str, Any], matcher: KeywordMatcher,
             now: datetime) -> Conversation[Timeline]:
    """``GET /2/users/:id/mentions``: summoned posts, the brand's own left out; billed as owned reads."""

    def sort(tweet: Any, users: Mapping[str, Mapping[str, Any]]) -> NormalizedPost | None:
        post = post_from_tweet(tweet, users, matcher, summoned=True)
        return None if post.author.external_id == user_id else post

    call = Call("GET", f"/2/users/{user_id}/mentions", "read the brand's mentions")
    return (yield from read_timeline(call, cursor, sort, Operation.OWNED_READ, now))


def combined(timelines: Sequence[Timeline], cursor: Mapping[str, Any],
             credentials: Mapping[str, Any] | None, *, warnings: Sequence[str] = ()) -> FetchResult:
    """One batch from several reads; ``cursor`` is the whole cursor to save. Posts two reads both found (a
    keyword match that also mentions the brand) are kept once, as the first read had them."""
    seen: set[str] = set()
    posts: list[NormalizedPost] = []
    rejected: list[RejectedRecord] = []
    remaining: int | None = None
    offset = 0
    for timeline in timelines:
        for post in timeline.posts:
            if post.external_id not in seen:
                seen.add(post.external_id)
                posts.append(post)
        rejected.extend(RejectedRecord(offset + r.position, r.reason, r.raw) for r in timeline.rejected)
        offset += timeline.read
        if timeline.remaining is not None:
            remaining = timeline.remaining if remaining is None else min(remaining, timeline.remaining)
    posts.sort(key=lambda p: id_key(p.external_id))
    return FetchResult(posts=posts, cursor=dict(cursor), rejected=rejected,
                       changes=[c for t in timelines for c in t.changes], credentials=credentials,
                       rate_limit_remaining=remaining, usage=[u for t in timelines for u in t.usage],
                       warnings=tuple(warnings))
