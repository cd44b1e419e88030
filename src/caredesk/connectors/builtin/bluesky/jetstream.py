"""Jetstream v1 (``/subscribe``): the whole network's posts as JSON lines, filtered here.

Jetstream has no keyword filter, so every post of the network passes through :meth:`Listener.classify`: a post is
kept when it addresses the brand (a mention facet with the brand's DID, a reply in a thread of the brand's, a
quote of a brand's post), when the brand wrote it, or when it matches the listening rules (keywords in the
configured languages). Deletions and edits of posts are passed on whatever their author: Jetstream cannot say
whether caredesk holds the post, and a deletion must not be missed because caredesk restarted in between.

The line format (``did``, ``time_us``, ``kind``, ``commit.operation/collection/rkey/rev/record/cid``) is the one of
bluesky-social/jetstream ``internal/subscribe/testdata/golden_v1.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from caredesk.connectors.base import (
    ConnectorError,
    MalformedPayload,
    NormalizedAuthor,
    NormalizedPost,
    PostChange,
    PostDeleted,
    PostEdited,
    unstorable,
)
from caredesk.connectors.builtin.bluesky.richtext import post_url
from caredesk.connectors.listening import KeywordMatcher, ListeningRules

POST = "app.bsky.feed.post"
MENTION = "app.bsky.richtext.facet#mention"
# A record's createdAt is the author's claim; earlier than this it is not believed (Bluesky opened in 2023).
EARLIEST = datetime(2022, 11, 1, tzinfo=UTC)
# Longer texts are not Bluesky posts (the lexicon allows 3,000 bytes): no relay checks that, so we do.
MAX_TEXT = 30_000
# How many delivered event keys a cursor keeps to drop the repeats of a rewound reconnection.
MAX_RECENT = 5000


@dataclass(frozen=True, slots=True)
class StreamCursor:
    """``time_us``: the latest event read (the last one, but never earlier than the cursor it resumed from);
    ``recent``: (time_us, key) of the posts and edits handed out within the rewind window before it, so that the
    ones a rewound reconnection repeats are dropped (a repeated deletion is harmless and not remembered)."""

    time_us: int = 0
    recent: tuple[tuple[int, str], ...] = ()

    @classmethod
    def from_mapping(cls, cursor: Mapping[str, Any]) -> StreamCursor:
        if not cursor:
            return cls()
        time_us, recent = cursor.get("time_us", 0), cursor.get("recent", [])
        if isinstance(time_us, bool) or not isinstance(time_us, int) or time_us < 0 or not isinstance(recent, list):
            raise ConnectorError("the Bluesky stream cursor is malformed; clear it to start from now")
        kept = []
        for item in recent:
            if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
                    and isinstance(item[1], str)):
                kept.append((item[0], item[1]))
        return cls(time_us=time_us, recent=tuple(kept))

    def to_mapping(self) -> dict[str, Any]:
        return {"time_us": self.time_us, "recent": [list(item) for item in self.recent]}


def subscribe_url(base: str, cursor_us: int) -> str:
    query = [("wantedCollections", POST)]
    if cursor_us > 0:
        query.append(("cursor", str(cursor_us)))
    return f"{base}?{urlencode(query)}"


@dataclass(frozen=True, slots=True)
class Classified:
    """One line's outcome: ``key`` identifies the event (for dropping repeats); ``post`` or ``change`` is what to
    hand out (neither: the line is not the brand's business)."""

    time_us: int
    key: str
    post: NormalizedPost | None = None
    change: PostChange | None = None


class Listener:
    """Turns Jetstream lines into posts and changes for one brand."""

    def __init__(self, brand_did: str, rules: ListeningRules, brand_handle: str = "") -> None:
        self.brand_did = brand_did
        self.brand_prefix = f"at://{brand_did}/" if brand_did else "\x00"
        self.brand_handle = brand_handle
        self.rules = rules
        self.matcher: KeywordMatcher = rules.matcher()

    def classify(self, line: str | bytes) -> Classified | None:
        """None for a line of no interest (another collection, an identity event); raises
        :class:`MalformedPayload` with the reason for a line that cannot be used."""
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise MalformedPayload(f"not JSON ({exc})") from None
        if not isinstance(event, dict):
            raise MalformedPayload("not a JSON object")
        time_us = event.get("time_us")
        if isinstance(time_us, bool) or not isinstance(time_us, int) or time_us <= 0:
            raise MalformedPayload("no integer time_us")
        if event.get("kind") != "commit":
            return None  # identity and account events
        commit = event.get("commit")
        if not isinstance(commit, dict):
            raise MalformedPayload("a commit event without a commit object")
        if commit.get("collection") != POST:
            return None
        did, rkey, rev, operation = event.get("did"), commit.get("rkey"), commit.get("rev"), commit.get("operation")
        if not (isinstance(did, str) and did.startswith("did:") and isinstance(rkey, str) and rkey
                and "/" not in rkey and "/" not in did):
            raise MalformedPayload("a post commit without a valid did and rkey")
        uri = f"at://{did}/{POST}/{rkey}"
        key = f"{uri}@{rev if isinstance(rev, str) else time_us}"
        if operation == "delete":
            return Classified(time_us, key, change=PostDeleted(uri))
        if operation not in ("create", "update"):
            raise MalformedPayload(f"unknown commit operation {str(operation)[:40]!r}")
        record = commit.get("record")
        if not isinstance(record, dict):
            raise MalformedPayload(f"{uri}: a {operation} without a record")
        text = record.get("text", "")
        if not isinstance(text, str):
            raise MalformedPayload(f"{uri}: text is not a string")
        if len(text) > MAX_TEXT:
            raise MalformedPayload(f"{uri}: text of {len(text)} characters (a post has at most 3,000 bytes)")
        if problem := unstorable(text):
            raise MalformedPayload(f"{uri}: the text holds {problem}")
        post = self._post(event, commit, record, did, rkey, uri, text, time_us, edited=operation == "update")
        if post is None:
            return Classified(time_us, key)
        if operation == "update":
            return Classified(time_us, key, change=PostEdited(post))
        return Classified(time_us, key, post=post)

    def _post(self, event: dict[str, Any], commit: dict[str, Any], record: dict[str, Any], did: str, rkey: str,
              uri: str, text: str, time_us: int, *, edited: bool) -> NormalizedPost | None:
        reply = record.get("reply")
        parent_uri = root_uri = ""
        if isinstance(reply, dict):
            parent_uri = ref_uri(reply.get("parent"))
            root_uri = ref_uri(reply.get("root")) or parent_uri
        langs = [v for v in record.get("langs") or () if isinstance(v, str)] if isinstance(
            record.get("langs"), list) else []
        ours = did == self.brand_did
        summoned = not ours and (parent_uri.startswith(self.brand_prefix) or root_uri.startswith(self.brand_prefix)
                                 or self._mentions_brand(record.get("facets"))
                                 or self._quotes_brand(record.get("embed")))
        keywords = self.matcher.match(text)
        if not (ours or summoned or edited):
            if not keywords or not (not langs or any(self.rules.wants_language(v) for v in langs)):
                return None
        return NormalizedPost(
            external_id=uri,
            author=NormalizedAuthor(external_id=did, handle=self.brand_handle if ours and self.brand_handle else did),
            text=text,
            created_at=created_at_of(record.get("createdAt"), time_us),
            in_reply_to_external_id=parent_uri,
            conversation_external_id=root_uri or uri,
            language=langs[0][:16] if langs else "",
            url=post_url(did, rkey),
            raw={"jetstream": {"did": did, "time_us": time_us, "commit": commit}},
            summoned=summoned,
            matched_keywords=keywords,
        )

    def _mentions_brand(self, facets: Any) -> bool:
        if not isinstance(facets, list) or not self.brand_did:
            return False
        for facet in facets:
            features = facet.get("features") if isinstance(facet, dict) else None
            for feature in features if isinstance(features, list) else ():
                if (isinstance(feature, dict) and feature.get("$type") == MENTION
                        and feature.get("did") == self.brand_did):
                    return True
        return False


    def _quotes_brand(self, embed: Any) -> bool:
        """Whether the post quotes one of the brand's posts (app.bsky.embed.record, or recordWithMedia)."""
        if not isinstance(embed, dict):
            return False
        inner = embed.get("record")
        if embed.get("$type") == "app.bsky.embed.recordWithMedia" and isinstance(inner, dict):
            inner = inner.get("record")
        return ref_uri(inner).startswith(self.brand_prefix)


def ref_uri(ref: Any) -> str:
    uri = ref.get("uri") if isinstance(ref, dict) else None
    return uri if isinstance(uri, str) and uri.startswith("at://") else ""


def created_at_of(value: Any, time_us: int) -> datetime:
    """The record's createdAt where it is believable, else when Jetstream saw it (a createdAt in the future is
    clamped, as Bluesky's own appview sorts by the earlier of the two)."""
    seen = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    if isinstance(value, str) and 20 <= len(value) <= 40:
        try:
            claimed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return seen
        if claimed.utcoffset() is not None:
            claimed = claimed.astimezone(UTC)
            if EARLIEST <= claimed <= seen:
                return claimed
            if seen < claimed <= seen + timedelta(days=365 * 50):
                return seen
    return seen
