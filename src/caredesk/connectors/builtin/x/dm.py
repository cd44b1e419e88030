"""X direct messages: reading the brand's DM events (``GET /2/dm_events``, the last 30 days), sending one
(``POST /2/dm_conversations/with/:participant_id/messages``) and, after a send whose answer was lost, looking for it
in that conversation. DM event reads cost $0.010 each, so every read here is one bounded page.

X's rule on unsolicited outreach (a DM only to someone who wrote to the brand) is the provider's ReplyRules'
business (``direct_needs_summons``); X itself refuses a DM the user's settings forbid with a 403, said as such.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caredesk.connectors.base import (
    CannotTell,
    MalformedPayload,
    NormalizedPost,
    OutboundReply,
    Refused,
    RejectedRecord,
    SentReply,
    Transient,
    unstorable,
)
from caredesk.connectors.builtin.x.api import XClient, json_of, platform_message
from caredesk.connectors.builtin.x.parse import author, id_key, parse_time, users_by_id
from caredesk.connectors.costs.prices import Operation, UsageEvent

DM_FIELDS = "id,event_type,text,sender_id,created_at,dm_conversation_id"
USER_FIELDS = "username,name,public_metrics,verified"
PAGE = 100
# X's DM list has no since_id, so every poll reads the newest events again, billed per event (free again within
# the UTC day, X's de-duplication): a poll's first page is small, later pages of a catch-up full.
FIRST_PAGE = 20
CURSOR_KEYS = ("dm_since", "dm_resume", "dm_top")
MAX_PAGES = 3  # per poll; a longer catch-up goes on from where it stopped at the next poll
FIND_EVENTS = 50  # one page of the conversation, when looking for a DM whose answer was lost
DM_LIMIT = 10_000  # characters in one direct message


@dataclass(frozen=True, slots=True)
class DMBatch:
    posts: list[NormalizedPost]
    rejected: list[RejectedRecord]
    cursor: dict[str, str]
    usage: list[UsageEvent]


def _digits(cursor: Mapping[str, Any], name: str) -> str:
    value = cursor.get(name)
    return value if isinstance(value, str) and value.isdigit() else ""


def dm_url(conversation_id: str) -> str:
    return f"https://x.com/messages/{conversation_id}" if conversation_id else "https://x.com/messages"


def post_from_event(event: Any, users: Mapping[str, Mapping[str, Any]]) -> NormalizedPost:
    if not isinstance(event, Mapping):
        raise MalformedPayload(f"a DM event that is not a JSON object: {event!r:.80}")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.isdigit():
        raise MalformedPayload(f"a DM event whose id is not a number: {event_id!r:.40}")
    what = f"DM event {event_id}"
    sender = event.get("sender_id")
    if not isinstance(sender, str) or not sender:
        raise MalformedPayload(f"{what} has no sender_id")
    user = users.get(sender)
    if user is None:
        raise MalformedPayload(f"{what}: its sender {sender[:40]} is missing from includes.users")
    text = event.get("text")
    if not isinstance(text, str):
        raise MalformedPayload(f"{what} has no text")
    conversation = event.get("dm_conversation_id")
    conversation = conversation if isinstance(conversation, str) else ""
    person = author(user)
    for name, value in (("text", text), ("dm_conversation_id", conversation)):
        if problem := unstorable(value):
            raise MalformedPayload(f"{what} has {problem} in {name}")
    return NormalizedPost(external_id=event_id, author=person, text=text,
                          created_at=parse_time(event.get("created_at"), f"{what}'s created_at"),
                          conversation_external_id=conversation, is_direct=True, url=dm_url(conversation),
                          raw=dict(event), summoned=True)


def fetch_dms(api: XClient, cursor: Mapping[str, Any], user_id: str, now: datetime) -> DMBatch:
    """DMs received since ``cursor["dm_since"]`` (the newest event id stored), newest first in pages of 100;
    the first poll reads the latest page only. X's DM list has no ``since_id``: reading stops at the first
    event at or below the floor. A catch-up longer than :data:`MAX_PAGES` keeps the floor and the page token
    (``dm_resume``) and the newest id read (``dm_top``), and goes on from there at the next poll."""
    floor = _digits(cursor, "dm_since")
    resume = cursor.get("dm_resume") if floor else None
    top = _digits(cursor, "dm_top") if resume else ""
    params: dict[str, Any] = {"max_results": FIRST_PAGE if floor and not resume else PAGE,
                              "event_types": "MessageCreate", "dm_event.fields": DM_FIELDS,
                              "expansions": "sender_id", "user.fields": USER_FIELDS}
    if isinstance(resume, str) and resume:
        params["pagination_token"] = resume
    posts: list[NormalizedPost] = []
    rejected: list[RejectedRecord] = []
    usage: list[UsageEvent] = []
    newest = top
    position = 0
    next_token = ""
    for _ in range(MAX_PAGES):
        response = api.request("GET", "/2/dm_events", "read the brand's direct messages", now, params=params)
        body = json_of(response, "read the brand's direct messages")
        if not isinstance(body, Mapping):
            raise Transient("X's DM events answer is not a JSON object")
        users = users_by_id(body.get("includes"))
        data = body.get("data") or []
        events = data if isinstance(data, list) else []
        ids = tuple(str(e["id"]) for e in events if isinstance(e, Mapping) and isinstance(e.get("id"), str))
        if ids:
            usage.append(UsageEvent(Operation.DM_EVENT_READ, now, ids))
        reached = False
        for event in events:
            event_id = event.get("id") if isinstance(event, Mapping) else None
            if isinstance(event_id, str) and event_id.isdigit():
                if floor and id_key(event_id) <= id_key(floor):
                    reached = True
                    break
                newest = max(newest or event_id, event_id, key=id_key)
            if isinstance(event, Mapping) and event.get("event_type", "MessageCreate") != "MessageCreate":
                continue
            try:
                post = post_from_event(event, users)
            except MalformedPayload as exc:
                rejected.append(RejectedRecord(position=position, reason=str(exc), raw=event))
            else:
                if post.author.external_id != user_id:  # our own DMs: sent from here or from the X app
                    posts.append(post)
            position += 1
        meta = body.get("meta")
        token = meta.get("next_token") if isinstance(meta, Mapping) else None
        next_token = token if isinstance(token, str) else ""
        if reached or not floor or not next_token:
            next_token = ""
            break
        params["pagination_token"] = next_token
        params["max_results"] = PAGE
    posts.sort(key=lambda p: id_key(p.external_id))
    if next_token:
        saved = {"dm_since": floor, "dm_resume": next_token, "dm_top": newest}
    else:
        saved = {"dm_since": newest or floor} if newest or floor else {}
    return DMBatch(posts=posts, rejected=rejected, cursor=saved, usage=usage)


def send_dm(api: XClient, reply: OutboundReply, now: datetime) -> SentReply:
    """One message to the author of the DM (or post) answered; X's 403 (the user's DM settings) is
    :class:`Refused` with X's reason."""
    participant = reply.in_reply_to_author.external_id
    if not participant.isdigit():
        raise Refused(f"not an X user id: {participant[:40]!r}")
    response = api.request("POST", f"/2/dm_conversations/with/{participant}/messages", "send the direct message",
                           now, json={"text": reply.text})
    answer = json_of(response, "send the direct message")
    data = answer.get("data") if isinstance(answer, Mapping) else None
    event_id = data.get("dm_event_id") if isinstance(data, Mapping) else None
    if not isinstance(event_id, str) or not event_id:
        raise Transient(f"X's answer to the direct message has no event id ({platform_message(response)})")
    conversation = data.get("dm_conversation_id") if isinstance(data, Mapping) else None
    return SentReply(external_id=event_id, created_at=now,
                     url=dm_url(conversation if isinstance(conversation, str) else ""))


def find_dm(api: XClient, reply: OutboundReply, user_id: str, now: datetime,
            comparable: Callable[[str], str]) -> SentReply | None:
    """Our message with the reply's text among the conversation's latest :data:`FIND_EVENTS` events, or None
    when the conversation holds no more than that page; :class:`CannotTell` beyond it."""
    participant = reply.in_reply_to_author.external_id
    if not participant.isdigit():
        raise CannotTell(f"not an X user id: {participant[:40]!r}")
    params = {"max_results": FIND_EVENTS, "event_types": "MessageCreate", "dm_event.fields": DM_FIELDS}
    response = api.request("GET", f"/2/dm_conversations/with/{participant}/dm_events",
                           "read the direct message conversation", now, params=params)
    body = json_of(response, "read the direct message conversation")
    data = body.get("data") if isinstance(body, Mapping) else None
    wanted = comparable(reply.text)
    for event in data if isinstance(data, list) else []:
        if not isinstance(event, Mapping) or event.get("sender_id") != user_id or not isinstance(event.get("id"), str):
            continue
        text = event.get("text")
        if isinstance(text, str) and comparable(text) == wanted:
            try:
                when = parse_time(event.get("created_at"), "DM event")
            except MalformedPayload:
                when = now
            conversation = event.get("dm_conversation_id")
            return SentReply(external_id=str(event["id"]), created_at=when,
                             url=dm_url(conversation if isinstance(conversation, str) else ""))
    meta = body.get("meta") if isinstance(body, Mapping) else None
    if isinstance(meta, Mapping) and isinstance(meta.get("next_token"), str) and meta["next_token"]:
        raise CannotTell(f"the message is not among the conversation's latest {FIND_EVENTS} on X; older ones "
                         "were not read")
    return None

