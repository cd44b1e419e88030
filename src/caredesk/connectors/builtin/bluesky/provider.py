"""The Bluesky provider: listening on Jetstream, mentions by polling notifications, replies on the brand's PDS.

Replies are written with ``com.atproto.repo.createRecord`` under a record key derived from the reply's
idempotency key (:func:`~caredesk.connectors.builtin.bluesky.richtext.tid_from_key`): a retry after a lost answer
hits the record already there instead of posting twice, and ``find_reply`` reads that one address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from caredesk.connectors.base import (
    CannotTell,
    Capability,
    ConnectorError,
    FetchResult,
    Identity,
    MalformedPayload,
    NormalizedAuthor,
    NormalizedPost,
    OutboundReply,
    PostChange,
    PostDeleted,
    Provider,
    ProviderConfig,
    ProviderCredentials,
    Refused,
    RejectedRecord,
    ReplyRules,
    SentReply,
    Transient,
    unstorable,
)
from caredesk.connectors.builtin.bluesky.config import BlueskyConfig, BlueskyCredentials
from caredesk.connectors.builtin.bluesky.jetstream import (
    MAX_RECENT,
    MAX_TEXT,
    POST,
    Listener,
    StreamCursor,
    created_at_of,
    ref_uri,
    subscribe_url,
)
from caredesk.connectors.builtin.bluesky.richtext import facets, post_url, split_at_uri, tid_from_key
from caredesk.connectors.builtin.bluesky.xrpc import TIMEOUT, Session, error_of, plain, typed_error
from caredesk.connectors.length import bluesky_reply_rules

log = logging.getLogger(__name__)

# A stream batch closes after this many events, or once the first post (or change) in it has waited this long:
# batching keeps the firehose cheap, and the wait bounds how late a customer's post reaches the desk.
BATCH_EVENTS = 500
BATCH_SECONDS = 0.1
# With nothing to hand out, the cursor is still saved this often, so a reconnection does not replay an hour.
IDLE_CURSOR_SECONDS = 5.0
NOTIFICATION_REASONS = ("mention", "reply", "quote")
NOTIFICATION_PAGE = 100
NOTIFICATION_PAGES = 50
CHAT_PROXY = {"atproto-proxy": "did:web:api.bsky.chat#bsky_chat"}
MAX_REJECT_RAW = 10_000
# Authors' profiles from the appview: getProfiles takes 25 actors; a stream remembers this many between batches.
PROFILES_PER_CALL = 25
MAX_PROFILES = 10_000
PROFILE_TIMEOUT = httpx.Timeout(5.0)
# Far above any real line (a record is at most 1 MiB of CBOR): a longer one would close the connection (1009), and
# the reconnection would meet it again, so the bound only guards memory.
MAX_LINE_BYTES = 16 * 2 ** 20


class BlueskyProvider(Provider[BlueskyConfig]):
    key: ClassVar[str] = "bluesky"
    display_name: ClassVar[str] = "Bluesky"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.STREAM, Capability.POLL, Capability.REPLY, Capability.DIRECT_MESSAGES}
    )
    config_model: ClassVar[type[ProviderConfig]] = BlueskyConfig
    credentials_model: ClassVar[type[ProviderCredentials]] = BlueskyCredentials

    @property
    def platform(self) -> str:
        return "bluesky"

    @cached_property
    def session(self) -> Session:
        return Session(self.http, self.config.service, self.credentials)

    @contextmanager
    def _client(self) -> Iterator[Session]:
        """The session, on the injected HTTP client or (setup checks construct providers without one) on a client
        of its own for the length of one operation."""
        session = self.session
        if self.http is not None:
            yield session
            return
        with httpx.Client(timeout=TIMEOUT) as client:
            session.http = client
            try:
                yield session
            finally:
                session.http = None

    def reply_rules(self) -> ReplyRules:
        return bluesky_reply_rules(direct_messages=self.config.direct_messages)

    def whoami(self) -> Identity:
        with self._client():
            return self._whoami()

    def _whoami(self) -> Identity:
        response = self.session.call("com.atproto.server.getSession")
        if response.status_code != 200:
            raise typed_error(response, "getSession")
        body = response.json()
        did, handle = body.get("did"), body.get("handle")
        if not isinstance(did, str) or not isinstance(handle, str):
            raise Transient("Bluesky getSession: an answer without did and handle")
        return Identity(account_ids=(did,), handles=(handle,))

    # -- listening on Jetstream -----------------------------------------------------------------------------

    async def stream(self, cursor: Mapping[str, Any], http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
        """Batches of the posts Jetstream carries that are the brand's business, from ``cursor`` (rewound by
        ``rewind_s``; the events handed out already are dropped by their key). Ends when Jetstream closes the
        connection normally; raises :class:`Transient` when it drops."""
        state = StreamCursor.from_mapping(cursor)
        brand_did = await self._brand_did(http)
        listener = Listener(brand_did, self.config.listening, self.config.handle)
        rewind_us = int(self.config.rewind_s * 1_000_000)
        start = max(0, state.time_us - rewind_us) if state.time_us else 0
        recent = dict((key, t) for t, key in state.recent)
        profiles: dict[str, NormalizedAuthor] = {}
        last_us = state.time_us
        try:
            connection = websockets.connect(subscribe_url(self.config.jetstream, start), open_timeout=15,
                                            max_size=MAX_LINE_BYTES, ping_interval=20, ping_timeout=30,
                                            compression=None)
            async with connection as ws:
                posts: list[NormalizedPost] = []
                changes: list[PostChange] = []
                rejected: list[RejectedRecord] = []
                events = 0
                position = 0
                last_yield = time.monotonic()
                work_since: float | None = None  # when the oldest post or change waiting in this batch came
                saved_us = last_us
                while True:
                    try:
                        if work_since is not None:
                            # Something waits to be handed out: it must not wait for the next line.
                            async with asyncio.timeout(max((work_since + BATCH_SECONDS) - time.monotonic(), 0.001)):
                                line = await ws.recv()
                        else:
                            line = await ws.recv()  # a cursor alone moves only with lines, so nothing is late
                    except TimeoutError:
                        line = None
                    except ConnectionClosed as exc:
                        if posts or changes or rejected or last_us != saved_us:
                            posts = await self._with_profiles(posts, http, profiles)
                            yield self._batch(posts, changes, rejected, last_us, recent, rewind_us)
                        if exc.rcvd is not None and exc.rcvd.code == 1000:
                            return
                        raise Transient(f"Jetstream connection lost ({exc})") from None
                    if line is not None:
                        events += 1
                        position += 1
                        try:
                            got = listener.classify(line)
                        except MalformedPayload as exc:
                            text = line if isinstance(line, str) else line.decode("utf-8", "replace")
                            rejected.append(RejectedRecord(position, f"Jetstream line {position}: {exc}",
                                                           raw=text[:MAX_REJECT_RAW]))
                            got = None
                        if got is not None:
                            # A rewound reconnection replays events before the saved cursor: it never goes back.
                            last_us = max(last_us, got.time_us)
                            if isinstance(got.change, PostDeleted):
                                # Deleting twice is harmless, and remembering the network's deletions is not.
                                changes.append(got.change)
                            elif (got.post or got.change) and got.key not in recent:
                                recent[got.key] = got.time_us
                                if got.post:
                                    posts.append(got.post)
                                elif got.change:
                                    changes.append(got.change)
                    now = time.monotonic()
                    has_work = bool(posts or changes or rejected)
                    if has_work and work_since is None:
                        work_since = now
                    full = events >= BATCH_EVENTS or (work_since is not None and now - work_since >= BATCH_SECONDS)
                    if (full and has_work) or (last_us != saved_us and now - last_yield >= IDLE_CURSOR_SECONDS):
                        posts = await self._with_profiles(posts, http, profiles)
                        yield self._batch(posts, changes, rejected, last_us, recent, rewind_us)
                        posts, changes, rejected = [], [], []
                        saved_us, last_yield, work_since = last_us, now, None
                    if full:
                        events = 0
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise Transient(f"cannot reach Jetstream at {self.config.jetstream}: {exc}") from None

    async def _with_profiles(self, posts: list[NormalizedPost], http: httpx.AsyncClient,
                             known: dict[str, NormalizedAuthor]) -> list[NormalizedPost]:
        """``posts`` with their authors' handles and names from the appview where it answers; where it does not,
        the DID stays as the handle (a post is never held back for its author's name)."""
        wanted = sorted({p.author.external_id for p in posts if p.author.handle == p.author.external_id} - set(known))
        if self.config.appview:
            for start in range(0, len(wanted), PROFILES_PER_CALL):
                chunk = wanted[start:start + PROFILES_PER_CALL]
                try:
                    response = await http.get(f"{self.config.appview}/xrpc/app.bsky.actor.getProfiles",
                                              params=[("actors", did) for did in chunk], timeout=PROFILE_TIMEOUT)
                    found = response.json().get("profiles") if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError, AttributeError) as exc:
                    log.info("Bluesky appview getProfiles failed: %s", type(exc).__name__)
                    break
                if not isinstance(found, list):
                    log.info("Bluesky appview getProfiles answered %s", response.status_code)
                    break
                for profile in found:
                    if isinstance(profile, dict) and profile.get("did") in chunk:
                        known[profile["did"]] = author_of(profile)
            if len(known) > MAX_PROFILES:
                known.clear()
        return [replace(p, author=known[p.author.external_id]) if p.author.external_id in known else p
                for p in posts]

    @staticmethod
    def _batch(posts: list[NormalizedPost], changes: list[PostChange], rejected: list[RejectedRecord],
               last_us: int, recent: dict[str, int], rewind_us: int) -> FetchResult:
        # Events come roughly in time order: a margin of twice the rewind keeps the keys a reconnection can meet.
        floor = last_us - 2 * rewind_us
        for key in [k for k, t in recent.items() if t < floor]:
            del recent[key]
        while len(recent) > MAX_RECENT:
            del recent[next(iter(recent))]
        cursor = StreamCursor(last_us, tuple((t, k) for k, t in recent.items()))
        return FetchResult(posts=tuple(posts), cursor=cursor.to_mapping(), rejected=tuple(rejected),
                           changes=tuple(changes))

    async def _brand_did(self, http: httpx.AsyncClient) -> str:
        """The brand's DID: stored after the first login, the identifier itself, or its handle resolved (no
        login: sessions are rate limited, 30 per 5 minutes, and a flapping stream must not use them up)."""
        did = plain(self.credentials.get("did"))
        identifier = plain(self.credentials.get("identifier")).lstrip("@")
        if did or identifier.startswith("did:"):
            return did or identifier
        try:
            response = await http.get(f"{self.config.service}/xrpc/com.atproto.identity.resolveHandle",
                                      params={"handle": identifier}, timeout=TIMEOUT)
        except httpx.TransportError as exc:
            raise Transient(f"Bluesky resolveHandle: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise typed_error(response, "resolveHandle")
        found = response.json().get("did")
        if not isinstance(found, str) or not found.startswith("did:"):
            raise Transient("Bluesky resolveHandle: an answer without a DID")
        return found

    # -- polling notifications --------------------------------------------------------------------------------

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        with self._client():
            return self._fetch(cursor, now)

    def _fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """Mentions, replies and quotes of the brand newer than ``cursor`` (``seen_at``, the newest indexedAt
        handed out, and ``seen``, the URIs handed out at that instant). The first poll takes one page."""
        seen_at = str(cursor.get("seen_at") or "")
        seen = set(cursor.get("seen") or ())
        matcher = self.config.listening.matcher()
        fresh: list[dict[str, Any]] = []
        rejected: list[RejectedRecord] = []
        page_cursor: str | None = None
        reached = False
        for _ in range(NOTIFICATION_PAGES):
            params: list[tuple[str, str | int]] = [("limit", NOTIFICATION_PAGE)]
            params += [("reasons", r) for r in NOTIFICATION_REASONS]
            if page_cursor:
                params.append(("cursor", page_cursor))
            response = self.session.call("app.bsky.notification.listNotifications", params=params)
            if response.status_code != 200:
                raise typed_error(response, "listNotifications", now)
            body = response.json()
            items = body.get("notifications") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise Transient("Bluesky listNotifications: an answer without notifications")
            for item in items:
                at = item.get("indexedAt") if isinstance(item, dict) else None
                if seen_at and isinstance(at, str) and (at < seen_at or (at == seen_at and item.get("uri") in seen)):
                    reached = True
                    break
                fresh.append(item)
            next_cursor = body.get("cursor")
            if reached or not seen_at or not isinstance(next_cursor, str) or not next_cursor or not items:
                reached = True
                break
            page_cursor = next_cursor
        if not reached:
            rejected.append(RejectedRecord(0, f"more than {NOTIFICATION_PAGES * NOTIFICATION_PAGE} notifications "
                                              "since the last poll: the older ones were not fetched"))
        posts: list[NormalizedPost] = []
        newest_at, newest = seen_at, set(seen)
        for position, item in enumerate(reversed(fresh), start=1):
            try:
                post, at = self._notification_post(item, matcher)
            except MalformedPayload as exc:
                rejected.append(RejectedRecord(position, f"notification {position}: {exc}", raw=item))
                continue
            if at > newest_at:
                newest_at, newest = at, set()
            if at == newest_at:
                newest.add(post.external_id)
            if post.author.external_id != self.session.did:
                posts.append(post)
        return FetchResult(posts=tuple(posts), cursor={"seen_at": newest_at, "seen": sorted(newest)},
                           rejected=tuple(rejected), credentials=self.session.rotated)

    def _notification_post(self, item: Any, matcher: Any) -> tuple[NormalizedPost, str]:
        if not isinstance(item, dict):
            raise MalformedPayload("not a JSON object")
        uri, at, author, record = item.get("uri"), item.get("indexedAt"), item.get("author"), item.get("record")
        if not isinstance(uri, str) or not isinstance(at, str) or not isinstance(author, dict) \
                or not isinstance(record, dict):
            raise MalformedPayload("a notification without uri, indexedAt, author and record")
        try:
            did, collection, rkey = split_at_uri(uri)
        except ValueError as exc:
            raise MalformedPayload(str(exc)) from None
        text = record.get("text", "")
        if collection != POST or not isinstance(text, str) or len(text) > MAX_TEXT:
            raise MalformedPayload(f"{uri}: not a post record")
        if problem := unstorable(text):
            raise MalformedPayload(f"{uri}: the text holds {problem}")
        handle = author.get("handle") if isinstance(author.get("handle"), str) else did
        name = author.get("displayName") if isinstance(author.get("displayName"), str) else ""
        try:
            indexed = datetime.fromisoformat(at.replace("Z", "+00:00"))
            indexed_us = int(indexed.timestamp() * 1_000_000) if indexed.utcoffset() is not None else 0
        except ValueError:
            indexed_us = 0
        if indexed_us <= 0:
            raise MalformedPayload(f"{uri}: indexedAt {at[:40]!r} is not a date")
        reply = record.get("reply")
        parent = root = ""
        if isinstance(reply, dict):
            parent = ref_uri(reply.get("parent"))
            root = ref_uri(reply.get("root"))
        langs = record.get("langs") if isinstance(record.get("langs"), list) else []
        language = langs[0][:16] if langs and isinstance(langs[0], str) else ""
        post = NormalizedPost(
            external_id=uri,
            author=NormalizedAuthor(external_id=did, handle=str(handle)[:253], name=str(name)[:200]),
            text=text,
            created_at=created_at_of(record.get("createdAt"), indexed_us),
            in_reply_to_external_id=parent,
            conversation_external_id=root or parent or uri,
            language=language,
            url=post_url(did, rkey),
            raw={"notification": {"reason": item.get("reason"), "uri": uri, "cid": item.get("cid"),
                                  "indexedAt": at, "record": record}},
            summoned=True,
            matched_keywords=matcher.match(text),
        )
        return post, at

    # -- replies ----------------------------------------------------------------------------------------------

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        with self._client():
            return self._send_reply(reply, now)

    def _send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        if not reply.idempotency_key:
            raise ConnectorError("cannot send a Bluesky reply without an idempotency key")
        if problem := self.reply_rules().problem(reply.text, direct=reply.is_direct):
            raise Refused(problem)
        if reply.is_direct:
            return self._send_message(reply, now)
        did = self.session.ensure_did()
        parent = self._get_record(reply.in_reply_to_external_id)
        if parent is None:
            raise Refused("the post answered is no longer on Bluesky (deleted)")
        parent_ref = {"uri": parent["uri"], "cid": parent["cid"]}
        root_ref = parent_ref
        parent_reply = parent["value"].get("reply") if isinstance(parent.get("value"), dict) else None
        if isinstance(parent_reply, dict) and isinstance(parent_reply.get("root"), dict):
            root = parent_reply["root"]
            if isinstance(root.get("uri"), str) and isinstance(root.get("cid"), str):
                root_ref = {"uri": root["uri"], "cid": root["cid"]}
        created_at = now.astimezone(UTC)
        record: dict[str, Any] = {
            "$type": POST,
            "text": reply.text,
            "createdAt": created_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created_at.microsecond // 1000:03d}Z",
            "reply": {"root": root_ref, "parent": parent_ref},
        }
        found_facets = facets(reply.text, reply.in_reply_to_author.handle, reply.in_reply_to_author.external_id)
        if found_facets:
            record["facets"] = found_facets
        if self.config.reply_langs:
            record["langs"] = list(self.config.reply_langs)
        rkey = tid_from_key(reply.idempotency_key)
        response = self.session.call("com.atproto.repo.createRecord",
                                     body={"repo": did, "collection": POST, "rkey": rkey, "record": record})
        if response.status_code == 200:
            uri = response.json().get("uri")
            uri = uri if isinstance(uri, str) else f"at://{did}/{POST}/{rkey}"
            return SentReply(external_id=uri, created_at=created_at, url=post_url(did, rkey))
        if response.status_code != 429:
            # The record a lost answer had created may be there already: the reference PDS then fails inside its
            # repo tree and answers 500, others 400 or 409. Look before calling it a refusal or a passing fault.
            existing = self._our_record(rkey)
            if existing is not None:
                if existing.get("value", {}).get("text") != reply.text:
                    raise Refused(f"record key {rkey} already holds another post (an idempotency key used twice?)")
                return self._sent(existing, did, rkey, now)
        raise typed_error(response, "createRecord", now)

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        with self._client():
            return self._find_reply(reply, now)

    def _find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        if reply.is_direct:
            raise CannotTell("Bluesky chat messages have no key to look them up by")
        did = self.session.ensure_did()
        rkey = tid_from_key(reply.idempotency_key)
        existing = self._our_record(rkey)
        return None if existing is None else self._sent(existing, did, rkey, now)

    def _sent(self, existing: Mapping[str, Any], did: str, rkey: str, now: datetime) -> SentReply:
        value = existing.get("value")
        stamp = value.get("createdAt") if isinstance(value, dict) else None
        return SentReply(external_id=f"at://{did}/{POST}/{rkey}", created_at=_stamp(stamp, now),
                         url=post_url(did, rkey))

    def _our_record(self, rkey: str) -> dict[str, Any] | None:
        return self._get_record(f"at://{self.session.ensure_did()}/{POST}/{rkey}")

    def _get_record(self, uri: str) -> dict[str, Any] | None:
        """The record at ``uri`` ({uri, cid, value}), or None when it does not exist. A PDS serves other repos'
        records by asking the network, so the post answered is read the same way as our own."""
        try:
            repo, collection, rkey = split_at_uri(uri)
        except ValueError as exc:
            raise Refused(f"cannot answer {uri[:80]!r}: {exc}") from None
        response = self.session.call("com.atproto.repo.getRecord",
                                     params={"repo": repo, "collection": collection, "rkey": rkey})
        if response.status_code == 404 or (response.status_code == 400
                                           and error_of(response).error == "RecordNotFound"):
            return None
        if response.status_code != 200:
            raise typed_error(response, "getRecord")
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("cid"), str) or not isinstance(body.get("uri"), str):
            raise Transient("Bluesky getRecord: an answer without uri and cid")
        return body

    def _send_message(self, reply: OutboundReply, now: datetime) -> SentReply:
        """A private reply through Bluesky chat (the PDS proxies it to the chat service)."""
        member = reply.in_reply_to_author.external_id
        if not member.startswith("did:"):
            raise Refused("a Bluesky private reply needs the author's DID")
        response = self.session.call("chat.bsky.convo.getConvoForMembers", params={"members": member},
                                     headers=CHAT_PROXY)
        if response.status_code != 200:
            raise typed_error(response, "getConvoForMembers", now)
        convo = response.json().get("convo")
        convo_id = convo.get("id") if isinstance(convo, dict) else None
        if not isinstance(convo_id, str):
            raise Transient("Bluesky getConvoForMembers: an answer without a conversation id")
        message: dict[str, Any] = {"text": reply.text}
        if found := facets(reply.text, reply.in_reply_to_author.handle, member):
            message["facets"] = found
        response = self.session.call("chat.bsky.convo.sendMessage", body={"convoId": convo_id, "message": message},
                                     headers=CHAT_PROXY)
        if response.status_code != 200:
            raise typed_error(response, "sendMessage", now)
        body = response.json()
        message_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(message_id, str):
            raise Transient("Bluesky sendMessage: an answer without a message id")
        return SentReply(external_id=f"chat:{convo_id}:{message_id}", created_at=_stamp(body.get("sentAt"), now))


def author_of(profile: Mapping[str, Any]) -> NormalizedAuthor:
    """An author from an appview profile view (``did``, ``handle``, ``displayName``, ``followersCount``)."""
    did = str(profile["did"])
    handle, name, followers = profile.get("handle"), profile.get("displayName"), profile.get("followersCount")
    return NormalizedAuthor(
        external_id=did,
        handle=handle[:253] if isinstance(handle, str) and handle and handle != "handle.invalid" else did,
        name=name[:200] if isinstance(name, str) else "",
        followers=followers if isinstance(followers, int) and not isinstance(followers, bool) and followers > 0 else 0,
    )


def _stamp(value: Any, now: datetime) -> datetime:
    """The platform's own timestamp of what we published, else ``now``."""
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return now.astimezone(UTC)
        if parsed.utcoffset() is not None:
            return parsed.astimezone(UTC)
    return now.astimezone(UTC)
