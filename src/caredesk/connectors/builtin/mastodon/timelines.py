"""What the brand gets from Mastodon, and how far it has read: mentions and DMs (notifications of type mention)
are *summoned* posts; hashtag and public timeline statuses are *listening* leads, kept only when they match the
listening rules. The REST catch-up reads every timeline from its cursor with ``min_id`` paging (the page right
after the cursor, then the next via the ``Link: rel="prev"`` URL), so nothing between the cursor and now is
skipped however many posts came in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from caredesk.connectors.base import (
    ConnectorError,
    FetchResult,
    MalformedPayload,
    NormalizedPost,
    PostChange,
    PostEdited,
    RateLimited,
    RejectedRecord,
    Transient,
)
from caredesk.connectors.builtin.mastodon.api import (
    Call,
    Conversation,
    exhausted,
    json_of,
    raise_for,
    rate_limit_reset,
    same_origin,
)
from caredesk.connectors.builtin.mastodon.parse import (
    html_to_text,
    id_key,
    is_edited,
    mentions_of,
    newest_id,
    parse_link_header,
    post_from_status,
    status_of_notification,
)
from caredesk.connectors.listening import KeywordMatcher, ListeningRules

PAGE_SIZE = 40  # Mastodon's default page; the maximum (80) is not allowed by every server
MAX_PAGES = 10  # per timeline per fetch: a long outage is caught up over several fetches, each one saved
PUBLIC_PARAMS = {"local": {"local": "true"}, "remote": {"remote": "true"}, "all": {}}


@dataclass(frozen=True, slots=True)
class Cursor:
    """The newest notification id and the newest status id of each listened timeline already delivered."""

    notifications: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    public: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Cursor:
        def an_id(value: Any, name: str) -> str | None:
            if value is None or value == "":
                return None
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ConnectorError(f"Mastodon cursor has an invalid {name} {value!r:.40}; clear it to start over")
            return str(value)

        tags = raw.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise ConnectorError("Mastodon cursor has invalid tags; clear it to start over")
        return cls(
            notifications=an_id(raw.get("notifications"), "notifications id"),
            tags={str(k): v for k, raw_id in tags.items() if (v := an_id(raw_id, f"tag {k}"))},
            public=an_id(raw.get("public"), "public id"),
        )

    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.notifications:
            out["notifications"] = self.notifications
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.public:
            out["public"] = self.public
        return out

    def advanced(self, source: str, new_id: str | None) -> Cursor:
        """This cursor with ``source`` ("notifications", "public" or "tag:<name>") moved to ``new_id`` if newer."""
        if not new_id:
            return self
        if source == "notifications":
            return Cursor(newest_id(self.notifications, new_id), self.tags, self.public)
        if source == "public":
            return Cursor(self.notifications, self.tags, newest_id(self.public, new_id))
        tag = source.removeprefix("tag:")
        return Cursor(self.notifications, {**self.tags, tag: newest_id(self.tags.get(tag), new_id) or new_id},
                      self.public)

    def position(self, source: str) -> str | None:
        if source == "notifications":
            return self.notifications
        if source == "public":
            return self.public
        return self.tags.get(source.removeprefix("tag:"))


class Sorter:
    """Turns statuses and notifications into posts and changes, for the brand's account ``own_id``."""

    def __init__(self, own_id: str, rules: ListeningRules) -> None:
        self.own_id = own_id
        self.rules = rules
        self.matcher: KeywordMatcher = rules.matcher()

    def mention(self, notification: Any) -> tuple[str, list[NormalizedPost], list[PostChange]]:
        """A notification's id and, for a mention (DMs included), its post; an edited status is also a change."""
        notification_id, kind, status = status_of_notification(notification)
        if kind != "mention" or status is None:
            return notification_id, [], []
        post = post_from_status(status)
        return notification_id, [post], [PostEdited(post)] if is_edited(status) else []

    def direct(self, conversation: Any) -> list[NormalizedPost]:
        """A Conversation event's last status, when someone else wrote it."""
        if not isinstance(conversation, Mapping):
            raise MalformedPayload(f"conversation is not a JSON object: {conversation!r:.80}")
        status = conversation.get("last_status")
        if not isinstance(status, Mapping) or self._ours(status):
            return []
        conversation_id = conversation.get("id")
        return [post_from_status(status, conversation_id=str(conversation_id) if conversation_id else "")]

    def listened(self, status: Any) -> NormalizedPost | None:
        """A hashtag or public timeline status as an unsummoned lead, or None when the rules do not want it. A
        status that mentions the brand is summoned (it also arrives as a notification; either copy is the post)."""
        if not isinstance(status, Mapping):
            raise MalformedPayload(f"status is not a JSON object: {status!r:.80}")
        if self._ours(status) or isinstance(status.get("reblog"), Mapping):
            return None  # the brand's own posts, and boosts (the boosted status is not new)
        post = post_from_status(status)
        summoned = self.own_id in mentions_of(status)
        if not summoned and not self.rules.wants_language(post.language):
            return None
        # A hashtag is matched from the status's tag list too: the server may show it only there.
        tags = status.get("tags")
        tag_words = " ".join(
            f"#{t['name']}" for t in (tags if isinstance(tags, list) else ())
            if isinstance(t, Mapping) and isinstance(t.get("name"), str)
        )
        matched = self.matcher.match(f"{post.text}\n{tag_words}")
        if not summoned and not matched:
            return None
        return replace(post, summoned=summoned, matched_keywords=matched)

    def _ours(self, status: Mapping[str, Any]) -> bool:
        account = status.get("account")
        return isinstance(account, Mapping) and str(account.get("id")) == self.own_id

    def edit(self, status: Any, *, listening: bool) -> PostEdited | None:
        """A ``status.update`` event as a change, when the status is one the brand has (or would have) stored."""
        if not isinstance(status, Mapping):
            raise MalformedPayload(f"status.update payload is not a JSON object: {status!r:.80}")
        if listening:
            post = self.listened(status)
            return PostEdited(post) if post else None
        if self.own_id in mentions_of(status) or status.get("visibility") == "direct":
            if not self._ours(status):
                return PostEdited(post_from_status(status))
        return None


@dataclass(slots=True)
class Batch:
    posts: list[NormalizedPost] = field(default_factory=list)
    changes: list[PostChange] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, posts: list[NormalizedPost]) -> None:
        for post in posts:
            if post.external_id not in self.seen:
                self.seen.add(post.external_id)
                self.posts.append(post)

    def reject(self, reason: str, raw: Any) -> None:
        self.rejected.append(RejectedRecord(position=len(self.rejected), reason=reason, raw=raw))

    def result(self, cursor: Cursor) -> FetchResult:
        return FetchResult(posts=list(self.posts), cursor=cursor.to_mapping(), rejected=list(self.rejected),
                           changes=list(self.changes))


def sources(rules: ListeningRules, public_timeline: str) -> list[str]:
    found = ["notifications", *(f"tag:{tag}" for tag in rules.hashtags)]
    if public_timeline != "off":
        found.append("public")
    return found


def _first_call(base: str, source: str, since: str | None, public_timeline: str) -> Call:
    params: list[tuple[str, str]] = [("limit", str(PAGE_SIZE))]
    if since:
        params.append(("min_id", since))
    if source == "notifications":
        return Call("GET", f"{base}/api/v1/notifications", [*params, ("types[]", "mention")])
    if source == "public":
        return Call("GET", f"{base}/api/v1/timelines/public", [*params, *PUBLIC_PARAMS[public_timeline].items()])
    tag = source.removeprefix("tag:")
    return Call("GET", f"{base}/api/v1/timelines/tag/{quote(tag, safe='')}", params)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What a catch-up read: ``more`` when a timeline has pages left (read again), ``error`` when it stopped on a
    rate limit or a server error after reading something (that much is kept; go on after the error)."""

    batch: Batch
    cursor: Cursor
    more: bool = False
    error: ConnectorError | None = None


def catch_up(base: str, cursor: Cursor, sorter: Sorter, public_timeline: str, now: datetime) -> Conversation[CatchUp]:
    """Read every timeline from ``cursor`` on, at most :data:`MAX_PAGES` pages each. A rate limit or server error
    raises when nothing was read yet, and otherwise ends the catch-up with what was read."""
    batch = Batch()
    more = False
    for source in sources(sorter.rules, public_timeline):
        call: Call | None = _first_call(base, source, cursor.position(source), public_timeline)
        pages = 0
        while call is not None:
            if pages == MAX_PAGES:
                more = True
                break
            response = yield call
            pages += 1
            try:
                raise_for(response, f"read {source}", now)
            except (RateLimited, Transient) as exc:
                if batch.posts or batch.changes or batch.rejected:
                    return CatchUp(batch, cursor, True, exc)
                raise
            records = json_of(response, f"read {source}")
            if not isinstance(records, list):
                raise Transient(f"Mastodon sent {source} that are not a list")
            if not records:
                break
            newest: str | None = None
            for record in records:
                try:
                    newest = newest_id(newest, _record_id(record))
                    _sort(sorter, source, record, batch)
                except MalformedPayload as exc:
                    batch.reject(f"{source}: {exc}", record)
            cursor = cursor.advanced(source, newest)
            if exhausted(response):
                limited = RateLimited("Mastodon rate limit spent while catching up", rate_limit_reset(response, now))
                return CatchUp(batch, cursor, True, limited)
            if newest is None:
                break  # a page of records without ids: paging on from it is impossible
            call = _next_call(response, base, source, cursor, public_timeline)
    return CatchUp(batch, cursor, more)


def _record_id(record: Any) -> str | None:
    if isinstance(record, Mapping) and isinstance(record.get("id"), str | int) and not isinstance(record["id"], bool):
        return str(record["id"])
    return None


def _sort(sorter: Sorter, source: str, record: Any, batch: Batch) -> None:
    if source == "notifications":
        _, posts, changes = sorter.mention(record)
        batch.add(posts)
        batch.changes.extend(changes)
        return
    post = sorter.listened(record)
    if post:
        batch.add([post])
        if isinstance(record, Mapping) and is_edited(record):
            batch.changes.append(PostEdited(post))


def _next_call(response: httpx.Response, base: str, source: str, cursor: Cursor, public_timeline: str) -> Call:
    """The page after this one: the server's ``rel="prev"`` link when it points back at the server, else the same
    request with ``min_id`` moved on (a server that sends no links still pages correctly)."""
    prev = parse_link_header(response.headers.get("link", "")).get("prev")
    if prev and same_origin(prev, base):
        url = httpx.URL(prev)
        if url.params.get("min_id") and id_key(url.params["min_id"]) >= id_key(cursor.position(source) or "0"):
            return Call("GET", str(url))
    return _first_call(base, source, cursor.position(source), public_timeline)


def plain(text: str) -> str:
    """A text as compared when looking for a published reply: markup gone, whitespace collapsed, mentions'
    domains dropped (Mastodon shows ``@user@domain`` as ``@user``)."""
    text = re.sub(r"@(\w+)@[\w.-]+\w", r"@\1", html_to_text(text) if "<" in text else text)
    return " ".join(text.split()).casefold()
