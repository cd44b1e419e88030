"""X's 24-hour compliance: a post deleted on X (or whose author went protected or was suspended) must go from
here too, and an edit must replace the old text. This tier of the API sends no delete or edit events, so the
desk asks: ``GET /2/tweets?ids=…`` (up to 100 ids) for the posts it stored, and turns X's answer into changes.

- an id X reports in ``errors[]`` as ``…/resource-not-found`` (deleted) or ``…/not-authorized-for-resource``
  (protected, suspended: no longer public) → :class:`PostDeleted`;
- a post whose ``edit_history_tweet_ids`` ends with a newer id than the one stored was edited: the newest
  version is read (a second lookup) → :class:`PostEdited` under the stored id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caredesk.connectors.base import MalformedPayload, PostChange, PostDeleted, PostEdited, Transient
from caredesk.connectors.builtin.x.api import XClient, json_of
from caredesk.connectors.builtin.x.parse import post_from_tweet, users_by_id
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.listening import KeywordMatcher

BATCH = 100  # ids per GET /2/tweets, X's maximum
GONE = ("/resource-not-found", "/not-authorized-for-resource")


@dataclass(frozen=True, slots=True)
class Sweep:
    changes: list[PostChange]
    usage: list[UsageEvent]


def _lookup(api: XClient, ids: Sequence[str], now: datetime, fields: Mapping[str, str]) -> Mapping[str, Any]:
    response = api.request("GET", "/2/tweets", "look up stored posts", now, params={"ids": ",".join(ids), **fields})
    body = json_of(response, "look up stored posts")
    if not isinstance(body, Mapping):
        raise Transient("X's post lookup answer is not a JSON object")
    return body


def _gone(body: Mapping[str, Any], asked: set[str]) -> list[str]:
    errors = body.get("errors")
    gone: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, Mapping):
            continue
        rid, kind = error.get("resource_id") or error.get("value"), error.get("type")
        if isinstance(rid, str) and rid in asked and isinstance(kind, str) and kind.endswith(GONE):
            gone.append(rid)
    return gone


def sweep(api: XClient, ids: Sequence[str], now: datetime, fields: Mapping[str, str],
          matcher: KeywordMatcher) -> Sweep:
    """The changes X reports for ``ids`` (at most :data:`BATCH`, numeric). A post X returns unchanged yields
    nothing; the caller compares an edit's text with its own (X cannot tell us what we stored)."""
    wanted = [i for i in dict.fromkeys(ids) if i.isdigit()]
    if len(wanted) > BATCH:
        raise ValueError(f"at most {BATCH} posts per compliance lookup, not {len(wanted)}")
    if not wanted:
        return Sweep([], [])
    asked = set(wanted)
    body = _lookup(api, wanted, now, fields)
    usage: list[UsageEvent] = []
    data = body.get("data")
    tweets = [t for t in data if isinstance(t, Mapping)] if isinstance(data, list) else []
    returned = tuple(str(t["id"]) for t in tweets if isinstance(t.get("id"), str))
    if returned:
        usage.append(UsageEvent(Operation.POST_READ, now, returned))
    changes: list[PostChange] = [PostDeleted(rid) for rid in _gone(body, asked)]
    newer: dict[str, str] = {}  # newest version's id → the stored id
    for tweet in tweets:
        tweet_id, history = tweet.get("id"), tweet.get("edit_history_tweet_ids")
        if not isinstance(tweet_id, str) or tweet_id not in asked or not isinstance(history, list) or not history:
            continue
        latest = history[-1]
        if isinstance(latest, str) and latest.isdigit() and latest != tweet_id:
            newer[latest] = tweet_id
    if newer:
        edits = _lookup(api, list(newer), now, fields)
        users = users_by_id(edits.get("includes"))
        versions = edits.get("data")
        read = []
        for version in versions if isinstance(versions, list) else []:
            version_id = version.get("id") if isinstance(version, Mapping) else None
            original = newer.get(version_id) if isinstance(version_id, str) else None
            if original is None:
                continue
            read.append(str(version["id"]))
            try:
                post = post_from_tweet(version, users, matcher, summoned=True)
            except MalformedPayload:
                continue  # an unreadable newest version: the stored one stays until the next sweep
            changes.append(PostEdited(dataclasses.replace(post, external_id=original)))
        if read:
            usage.append(UsageEvent(Operation.POST_READ, now, tuple(read)))
        # A newest version that is itself gone: the post as a whole is no longer public.
        changes.extend(PostDeleted(newer[rid]) for rid in _gone(edits, set(newer)))
    return Sweep(changes, usage)
