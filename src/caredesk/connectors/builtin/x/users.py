"""The authors the Activity API leaves out: its reply and quote events come with empty ``includes``, so their
author is known by id only. The stream looks the missing ones up in one batch, ``GET /2/users?ids=…`` (app
bearer token, up to 100 ids a request, billed as user reads; X de-duplicates them within the day), and keeps
what it learned (from the look-ups and from every post that came with its author) for the stream's lifetime.

Webhook deliveries are parsed inside the transaction that stores them, where nothing may call the network: their
authors stay known by id until a post with the user object arrives."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from caredesk.connectors.base import (
    ConnectorError,
    MalformedPayload,
    NormalizedAuthor,
    NormalizedPost,
    PostEdited,
    RateLimited,
)
from caredesk.connectors.builtin.x.api import Call, Conversation, arun_app, json_of
from caredesk.connectors.builtin.x.parse import author, users_by_id
from caredesk.connectors.builtin.x.timeline import USER_FIELDS
from caredesk.connectors.costs.prices import Operation, UsageEvent

if TYPE_CHECKING:
    from caredesk.connectors.builtin.x.activity import Events
    from caredesk.connectors.builtin.x.provider import XProvider

log = logging.getLogger(__name__)

USERS_PATH = "/2/users"
MAX_IDS = 100  # per request
CACHE_SIZE = 10_000
FAILURE_PAUSE = timedelta(minutes=1)


def unknown(person: NormalizedAuthor) -> bool:
    """An author known by id only (:func:`~caredesk.connectors.builtin.x.parse.post_from_tweet` then uses the id
    as the handle)."""
    return person.handle == person.external_id and person.external_id.isdigit()


def lookup(ids: Sequence[str]) -> Conversation[dict[str, Mapping[str, Any]]]:
    """``GET /2/users?ids=…`` in chunks of :data:`MAX_IDS`: the users found, by id (X lists the others, suspended
    or deleted, under ``errors``)."""
    found: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(ids), MAX_IDS):
        chunk = ids[start : start + MAX_IDS]
        response = yield Call("GET", USERS_PATH, "look up the authors of replies and quotes",
                              params={"ids": ",".join(chunk), "user.fields": USER_FIELDS})
        body = json_of(response, "look up the authors of replies and quotes")
        data = body.get("data") if isinstance(body, Mapping) else None
        found.update({k: v for k, v in users_by_id({"users": data}).items() if k in chunk})
    return found


class Authors:
    """What the stream knows of X users, by id (None: X has no such user to show), oldest forgotten first."""

    def __init__(self) -> None:
        self._known: dict[str, NormalizedAuthor | None] = {}
        self.paused_until: datetime | None = None  # after a failed look-up: ids are shown until then

    def _keep(self, user_id: str, person: NormalizedAuthor | None) -> None:
        self._known.pop(user_id, None)
        self._known[user_id] = person
        while len(self._known) > CACHE_SIZE:
            del self._known[next(iter(self._known))]

    def learn(self, posts: Iterable[NormalizedPost]) -> None:
        for post in posts:
            if not unknown(post.author):
                self._keep(post.author.external_id, post.author)

    def missing(self, posts: Iterable[NormalizedPost]) -> list[str]:
        return list(dict.fromkeys(p.author.external_id for p in posts
                                  if unknown(p.author) and p.author.external_id not in self._known))

    def found(self, asked: Sequence[str], users: Mapping[str, Mapping[str, Any]]) -> None:
        for user_id in asked:
            record = users.get(user_id)
            try:
                self._keep(user_id, author(record) if record is not None else None)
            except MalformedPayload:
                self._keep(user_id, None)  # a user object we cannot use: the id stays the name

    def filled(self, post: NormalizedPost) -> NormalizedPost:
        person = self._known.get(post.author.external_id) if unknown(post.author) else None
        if person is None:
            return post
        url = post.url.replace("https://x.com/i/status/", f"https://x.com/{person.handle}/status/", 1)
        return dataclasses.replace(post, author=person, url=url)


async def fill_authors(provider: XProvider, http: httpx.AsyncClient, events: Events, now: datetime) -> None:
    """Put the authors known by id only in ``events`` under their names, looking the new ones up in one batch
    (billed in ``events.usage``). A failed look-up leaves the ids (the posts are stored all the same) and pauses
    the look-ups a while."""
    authors = provider.authors
    everything = [*events.posts, *(c.post for c in events.changes)]
    authors.learn(everything)
    ids = authors.missing(everything)
    if ids and (authors.paused_until is None or authors.paused_until <= now):
        try:
            users = await arun_app(http, provider.config.api, provider.bearer(), lookup(ids), now)
        except ConnectorError as exc:
            authors.paused_until = exc.retry_at if isinstance(exc, RateLimited) else now + FAILURE_PAUSE
            log.warning("X: could not look up %s authors (their ids are shown): %s", len(ids), exc)
        else:
            authors.paused_until = None
            authors.found(ids, users)
            if users:
                events.usage.append(UsageEvent(Operation.USER_READ, now, tuple(users)))
    events.posts = [authors.filled(p) for p in events.posts]
    events.changes = [PostEdited(authors.filled(c.post)) for c in events.changes]
