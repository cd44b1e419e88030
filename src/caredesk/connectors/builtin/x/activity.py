"""The X Activity API (XAA): its events → posts, and the subscriptions that make X send them.

Every event, over ``GET /2/activity/stream`` or to a webhook, has one envelope:
``{"data": {"event_uuid", "filter": {"user_id"}, "event_type", "tag", "payload", "includes"}}``
(xdevplatform/docs ``x-api/activity/event-payloads.mdx``). Kept here:

* ``post.mention.create``, ``post.reply.create``, ``post.quote.create``: ``payload`` is a Post object, so each is a
  summoned post (the author addressed the brand); ``includes.users`` may hold its author, each user wrapped as
  ``{"data": user}`` or not, and is empty for replies and quotes (the author is then known by id only);
* ``dm.received``: ``payload.direct_message_events[]`` of type ``message_create`` (``sender_id``,
  ``target.recipient_id``, ``message_data.text``, ``created_timestamp`` in ms) and ``payload.users``, a map from id
  to ``{"data": user}``: each message is a direct post in the conversation of the two accounts.

The brand's own events are dropped; a broken event becomes a :class:`RejectedRecord` and the rest go on; event
types we did not ask for are counted in :attr:`Events.ignored`, not rejected. Post events bill as post reads and
DMs as DM event reads (the users in ``includes`` are not billed apart)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from caredesk.connectors.base import (
    MalformedPayload,
    NormalizedAuthor,
    NormalizedPost,
    PostEdited,
    RejectedRecord,
    unstorable,
)
from caredesk.connectors.builtin.x.api import Call, Conversation, json_of
from caredesk.connectors.builtin.x.parse import author, id_key, new_or_edit, post_from_tweet, string, users_by_id
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.listening import KeywordMatcher

POST_EVENTS = ("post.mention.create", "post.reply.create", "post.quote.create")
DM_EVENTS = ("dm.received",)
EVENT_TYPES = (*POST_EVENTS, *DM_EVENTS)
# These also show in the mentions timeline, so their ids move the catch-up cursor (a quote need not mention us).
TIMELINE_EVENTS = ("post.mention.create", "post.reply.create")
SUBSCRIPTIONS_PATH = "/2/activity/subscriptions"
SUBSCRIPTION_TAG = "caredesk"
MAX_RAW = 100_000  # characters of a rejected line kept for the operator
MAX_LIST_PAGES = 20


@dataclass
class Events:
    """What a run of events held; positions count from ``start``."""

    posts: list[NormalizedPost] = field(default_factory=list)
    changes: list[PostEdited] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    usage: list[UsageEvent] = field(default_factory=list)
    ignored: int = 0
    newest_mention: str = ""  # the newest id of a post the mentions timeline also has
    newest_matches: dict[str, str] = field(default_factory=dict)  # query key → newest filtered-stream match id

    def add(self, post: NormalizedPost) -> None:
        sorted_post = new_or_edit(post)
        if isinstance(sorted_post, PostEdited):
            self.changes.append(sorted_post)
        else:
            self.posts.append(sorted_post)

    def reject(self, position: int, reason: str, raw: Any) -> None:
        if isinstance(raw, str) and len(raw) > MAX_RAW:
            raw = raw[:MAX_RAW]
        self.rejected.append(RejectedRecord(position=position, reason=reason, raw=raw))


def envelopes(body: Any) -> list[Any]:
    """A delivery's events: one envelope, a list of them, or a bare event object."""
    items = body if isinstance(body, list) else [body]
    return [item.get("data") if isinstance(item, Mapping) and "event_type" not in item else item for item in items]


def parse_line(line: str, position: int, events: Events, brand_id: str, matcher: KeywordMatcher,
               now: datetime) -> None:
    """One line of the activity stream (not a keep-alive) into ``events``."""
    try:
        body = json.loads(line)
    except ValueError as exc:
        events.reject(position, f"an activity stream line that is not JSON ({exc})", line)
        return
    if isinstance(body, Mapping) and "data" not in body and "errors" in body:
        events.reject(position, f"the activity stream sent an error: {str(body.get('errors'))[:300]}", body)
        return
    for event in envelopes(body):
        parse_event(event, position, events, brand_id, matcher, now)


def parse_event(event: Any, position: int, events: Events, brand_id: str, matcher: KeywordMatcher,
                now: datetime) -> None:
    """One event (the envelope's ``data``) into ``events``; never raises for what the event holds."""
    try:
        if not isinstance(event, Mapping):
            raise MalformedPayload(f"an activity event that is not a JSON object: {event!r:.80}")
        kind = event.get("event_type")
        if not isinstance(kind, str):
            raise MalformedPayload("an activity event without an event_type")
        if kind not in EVENT_TYPES:
            events.ignored += 1
            return
        filtered = event.get("filter")
        subject = filtered.get("user_id") if isinstance(filtered, Mapping) else None
        brand = brand_id or (subject if isinstance(subject, str) else "")
        payload = event.get("payload")
        if not isinstance(payload, Mapping):
            raise MalformedPayload(f"{kind} event without a payload object")
        if kind in DM_EVENTS:
            _direct_messages(payload, brand, matcher, events, position, now)
            return
        post = post_from_tweet(payload, users_by_id(event.get("includes")), matcher, summoned=True,
                               author_optional=True)
        events.usage.append(UsageEvent(Operation.POST_READ, now, (post.external_id,)))
        if kind in TIMELINE_EVENTS:
            events.newest_mention = max(events.newest_mention or post.external_id, post.external_id, key=id_key)
        if post.author.external_id != brand:
            events.add(post)
    except MalformedPayload as exc:
        events.reject(position, str(exc), dict(event) if isinstance(event, Mapping) else event)


def _direct_messages(payload: Mapping[str, Any], brand: str, matcher: KeywordMatcher, events: Events,
                     position: int, now: datetime) -> None:
    messages = payload.get("direct_message_events")
    if not isinstance(messages, list):
        raise MalformedPayload("dm.received event without direct_message_events")
    users = users_by_id(payload)
    for message in messages:
        try:
            events.add(_direct_message(message, users, brand, matcher, events, now))
        except _Own:
            continue
        except MalformedPayload as exc:
            events.reject(position, str(exc), message)


class _Own(Exception):
    """A message the brand sent."""


def _direct_message(message: Any, users: Mapping[str, Mapping[str, Any]], brand: str, matcher: KeywordMatcher,
                    events: Events, now: datetime) -> NormalizedPost:
    if not isinstance(message, Mapping) or message.get("type") != "message_create":
        raise MalformedPayload(f"a direct message event that is not a message_create: {message!r:.80}")
    message_id = string(message, "id", "a direct message", required=True)
    if not message_id.isdigit():
        raise MalformedPayload(f"direct message id {message_id[:40]!r} is not a number")
    what = f"direct message {message_id}"
    events.usage.append(UsageEvent(Operation.DM_EVENT_READ, now, (message_id,)))
    create = message.get("message_create")
    if not isinstance(create, Mapping):
        raise MalformedPayload(f"{what} has no message_create")
    sender = string(create, "sender_id", what, required=True)
    if sender == brand:
        raise _Own
    target = create.get("target")
    recipient = target.get("recipient_id") if isinstance(target, Mapping) else None
    data = create.get("message_data")
    if not isinstance(data, Mapping):
        raise MalformedPayload(f"{what} has no message_data")
    text = data.get("text")
    if not isinstance(text, str) or unstorable(text):
        raise MalformedPayload(f"{what} has no usable text")
    stamp = message.get("created_timestamp")
    if not isinstance(stamp, str) or not stamp.isdigit() or len(stamp) > 15:
        raise MalformedPayload(f"{what} has no usable created_timestamp: {stamp!r:.40}")
    created = datetime.fromtimestamp(int(stamp) / 1000, UTC)
    user = users.get(sender)
    person = author(user) if user is not None else NormalizedAuthor(external_id=sender, handle=sender)
    # X's id of a one-to-one conversation: the two user ids, the smaller first.
    pair = sorted({sender, recipient if isinstance(recipient, str) and recipient.isdigit() else brand or sender},
                  key=id_key)
    return NormalizedPost(
        external_id=message_id, author=person, text=text, created_at=created,
        conversation_external_id=f"dm:{'-'.join(pair)}", is_direct=True, raw=dict(message),
        summoned=True, matched_keywords=matcher.match(text),
    )


@dataclass(frozen=True, slots=True)
class SubscriptionSync:
    """Event types whose subscription was created, moved to the webhook, or already in place."""

    created: tuple[str, ...] = ()
    moved: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


def sync_subscriptions(user_id: str, webhook_id: str = "") -> Conversation[SubscriptionSync]:
    """The XAA subscriptions for the brand's user id, one per event type we read: list them (all pages), create
    the missing ones, and, with ``webhook_id``, point those delivering elsewhere at it (``PUT``: a second
    subscription of the same kind would deliver each event twice; one with a webhook also feeds the stream)."""
    have: dict[str, Mapping[str, Any]] = {}
    params: dict[str, Any] = {}
    for _ in range(MAX_LIST_PAGES):
        response = yield Call("GET", SUBSCRIPTIONS_PATH, "list the activity subscriptions", params=dict(params))
        body = json_of(response, "list the activity subscriptions")
        data = body.get("data") if isinstance(body, Mapping) else None
        for sub in data if isinstance(data, list) else []:
            filtered = sub.get("filter") if isinstance(sub, Mapping) else None
            kind = sub.get("event_type") if isinstance(sub, Mapping) else None
            if not isinstance(filtered, Mapping) or filtered.get("user_id") != user_id or kind not in EVENT_TYPES:
                continue
            if kind not in have or (webhook_id and sub.get("webhook_id") == webhook_id):
                have[str(kind)] = sub
        meta = body.get("meta") if isinstance(body, Mapping) else None
        token = meta.get("next_token") if isinstance(meta, Mapping) else None
        if not isinstance(token, str) or not token:
            break
        params["pagination_token"] = token
    created: list[str] = []
    moved: list[str] = []
    kept: list[str] = []
    for kind in EVENT_TYPES:
        sub = have.get(kind)
        sub_id = sub.get("subscription_id") if sub is not None else None
        if sub is None:
            request: dict[str, Any] = {"event_type": kind, "filter": {"user_id": user_id}, "tag": SUBSCRIPTION_TAG}
            if webhook_id:
                request["webhook_id"] = webhook_id
            yield Call("POST", SUBSCRIPTIONS_PATH, f"subscribe to {kind} events", json=request)
            created.append(kind)
        elif webhook_id and sub.get("webhook_id") != webhook_id and isinstance(sub_id, str) and sub_id.isdigit():
            yield Call("PUT", f"{SUBSCRIPTIONS_PATH}/{sub_id}", f"deliver {kind} events to the webhook",
                       json={"webhook_id": webhook_id})
            moved.append(kind)
        else:
            kept.append(kind)
    return SubscriptionSync(tuple(created), tuple(moved), tuple(kept))


def ensure_subscriptions(user_id: str, webhook_id: str = "") -> Conversation[list[str]]:
    """:func:`sync_subscriptions`; the event types created."""
    sync = yield from sync_subscriptions(user_id, webhook_id)
    return list(sync.created)
