"""The X provider: listening (the Activity API by webhook or stream, the filtered stream for keywords, the
mentions timeline and recent search by polling), and replies.

The ladder (:meth:`XProvider.rungs`): webhook where the installation has a public URL and the consumer secret,
stream where it has the app's bearer token, polling always (the user's token), then manual import. Every read
reports its usage (:class:`UsageEvent`) so the cost meter can price it with :data:`DEFAULT_X_PRICES`."""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from caredesk.connectors.base import (
    CannotTell,
    Capability,
    ConnectorError,
    FetchResult,
    Identity,
    OutboundReply,
    Provider,
    ProviderConfig,
    ProviderCredentials,
    RateLimited,
    Refused,
    RejectedRecord,
    ReplyRules,
    Rung,
    SentReply,
    Transient,
    WebhookAnswer,
    WebhookRequest,
)
from caredesk.connectors.builtin.x import compliance, dm, webhook
from caredesk.connectors.builtin.x import stream as x_stream
from caredesk.connectors.builtin.x.activity import ensure_subscriptions, sync_subscriptions
from caredesk.connectors.builtin.x.api import (
    Call,
    Conversation,
    TokenExpired,
    XClient,
    arun_app,
    json_of,
    platform_message,
    run_app,
)
from caredesk.connectors.builtin.x.config import XConfig, XCredentials
from caredesk.connectors.builtin.x.parse import replied_to
from caredesk.connectors.builtin.x.registration import Subscribed, WebhookSync, ensure_webhook
from caredesk.connectors.builtin.x.rules import RulesSync, sync_rules, tag_prefix
from caredesk.connectors.builtin.x.search import SEARCH_RETRY, Searched, build_queries, search, search_due, wanted_rules
from caredesk.connectors.builtin.x.timeline import TWEET_FIELDS, USER_FIELDS, Timeline, combined, cursor_id, mentions
from caredesk.connectors.builtin.x.users import Authors
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, PriceTable
from caredesk.connectors.length import URL_RE, x_reply_rules

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(20.0, connect=10.0)
# A reply whose token expired waits for the next poll to renew it (polls run every minute or so).
TOKEN_WAIT = timedelta(minutes=2)
FIND_PAGES = 2  # of the brand's own latest 100 posts, when looking for a reply whose answer was lost
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")
MENTION_KEYS = ("since_id", "until_id", "newest")


@contextmanager
def _borrowed(http: httpx.Client) -> Iterator[httpx.Client]:
    yield http  # the caller's client: not ours to close


def _comparable(text: str) -> str:
    """A reply's text as X shows it back: without the leading @mentions X may add, URLs as t.co links."""
    text = unicodedata.normalize("NFC", text).strip()
    text = _LEADING_MENTIONS.sub("", text)
    text = URL_RE.sub("<url>", text)
    return " ".join(text.split())


def with_mentions(cursor: Mapping[str, Any], timeline: Timeline) -> dict[str, Any]:
    """``cursor`` with the mentions timeline's part replaced by where ``timeline`` ended."""
    kept = {k: v for k, v in cursor.items() if k not in MENTION_KEYS}
    return {**kept, **timeline.cursor}


def _me() -> Conversation[Identity]:
    response = yield Call("GET", "/2/users/me", "read the brand's account", params={"user.fields": "username,name"})
    body = json_of(response, "read the brand's account")
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) \
            or not isinstance(data.get("username"), str):
        raise Transient("X's answer about the brand's account has no id or username")
    name = data.get("name")
    return Identity(account_ids=(data["id"],), handles=(data["username"],),
                    display_name=name if isinstance(name, str) else "")


class XProvider(Provider[XConfig]):
    """Mentions, replies, quotes and DMs of the brand's account as summoned posts (Activity API events, or the
    mentions timeline polled with ``since_id``); keyword matches as listening leads (filtered stream, or recent
    search); replies as posts with ``reply.in_reply_to_tweet_id``. X has no idempotency key: a send whose answer
    was lost is looked for among the brand's own latest posts (:meth:`find_reply`) before anything is sent
    again."""

    key: ClassVar[str] = "x"
    display_name: ClassVar[str] = "X"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.STREAM, Capability.POLL, Capability.WEBHOOK, Capability.REPLY, Capability.DIRECT_MESSAGES})
    config_model: ClassVar[type[ProviderConfig]] = XConfig
    credentials_model: ClassVar[type[ProviderCredentials]] = XCredentials
    idempotent_replies: ClassVar[bool] = False
    rotates_credentials: ClassVar[bool] = True
    # The mentions timeline and recent search allow 300 requests per 15 minutes per user (one every 3 s); a poll
    # may ask both, and page: every 15 s stays well inside, where the worker's default of 2 s would hit 429s.
    min_poll_seconds: ClassVar[float] = 15.0
    prices: ClassVar[PriceTable | None] = DEFAULT_X_PRICES
    compliance_batch: ClassVar[int] = compliance.BATCH

    def __init__(self, config: XConfig, credentials: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, credentials, http)
        self._identity: Identity | None = None
        self._client: XClient | None = None
        self._depth = 0
        self.ignored_events = 0  # Activity API events of kinds not read, and other installations' rule matches
        self.authors = Authors()  # X users the stream learned, for reply and quote events that name only an id

    @property
    def platform(self) -> str:
        return "x"

    @contextmanager
    def _api(self) -> Iterator[XClient]:
        """The client, over the injected ``http`` or one opened for the outermost call (calls nest: a poll asks
        whoami)."""
        if self._client is not None and (self.http is not None or self._depth):
            self._depth += 1
            try:
                yield self._client
            finally:
                self._depth -= 1
            return
        with httpx.Client(timeout=TIMEOUT) if self.http is None else _borrowed(self.http) as http:
            if self._client is None:
                self._client = XClient(self.config.api, self.credentials, http)
            self._client.http = http
            self._client.may_refresh = self.hand_back_rotated
            self._depth += 1
            try:
                yield self._client
            finally:
                self._depth -= 1

    def _credentials(self) -> XCredentials:
        try:
            return XCredentials.model_validate(dict(self.credentials))
        except ValueError:
            with self._api() as api:  # raises the clear AuthRevoked of incomplete credentials
                return api.credentials

    def rungs(self) -> tuple[Rung, ...]:
        """Webhook with a public URL and the consumer secret that signs deliveries; stream with the app's bearer
        token; polling always (the user's token); manual import last."""
        try:
            creds: XCredentials | None = XCredentials.model_validate(dict(self.credentials))
        except ValueError:
            creds = None
        allowed: list[Rung] = []
        if creds is not None and self.config.webhook_url and creds.consumer_secret is not None:
            allowed.append(Rung.WEBHOOK)
        if creds is not None and creds.bearer_token is not None:
            allowed.append(Rung.STREAM)
        return (*allowed, Rung.POLL, Rung.IMPORT)

    def reply_rules(self) -> ReplyRules:
        rules = x_reply_rules()
        rules.direct_messages = self.config.direct_messages
        rules.direct_max_length = dm.DM_LIMIT
        rules.direct_needs_summons = True  # X's rule on unsolicited outreach
        rules.ai_written_replies = self.config.ai_replies_approved
        return rules

    def rotated_credentials(self) -> Mapping[str, Any] | None:
        return self._client.rotated if self._client is not None else None

    # -- who ---------------------------------------------------------------------------------------------------

    def whoami(self, now: datetime | None = None) -> Identity:
        if self._identity is None:
            with self._api() as api:
                self._identity = api.run(_me(), now or datetime.now(UTC))
        return self._identity

    def learned_config(self) -> Mapping[str, Any]:
        """The brand's user id, kept at setup so that polls need not ask ``/2/users/me`` every time."""
        if self.config.user_id or self._identity is None:
            return {}
        return {"user_id": self._identity.account_ids[0]}

    def user_id(self, now: datetime) -> str:
        return self.config.user_id or self.whoami(now).account_ids[0]

    # -- reading -----------------------------------------------------------------------------------------------

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """Mentions newer than ``cursor["since_id"]`` (the first poll of an installation reads the latest page
        only; the brand's own posts are left out) and, with keywords, recent search from each query's own
        position (``cursor["search"]``). See :mod:`caredesk.connectors.builtin.x.timeline` for the paging. A
        search failure does not lose the mentions: see :meth:`read_result`."""
        with self._api() as api:
            previous, api.may_refresh = api.may_refresh, True  # the rotated tokens travel back in the FetchResult
            try:
                result = self._fetch(api, cursor, now)
                if not self.config.direct_messages:
                    return result
                dms = dm.fetch_dms(api, cursor, self.user_id(now), now)
            finally:
                api.may_refresh = previous
        shift = len(result.rejected)
        rejected = [*result.rejected, *(RejectedRecord(r.position + shift, r.reason, r.raw) for r in dms.rejected)]
        # The DM read's part of the cursor is wholly its own: a finished catch-up drops its resume keys.
        others = {k: v for k, v in result.cursor.items() if k not in dm.CURSOR_KEYS}
        return dataclasses.replace(result, posts=[*result.posts, *dms.posts], cursor={**others, **dms.cursor},
                                   rejected=rejected, credentials=api.rotated, usage=[*result.usage, *dms.usage])

    def _fetch(self, api: XClient, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """Mentions, then recent search (with keywords, when due), while ``api`` may renew the token."""
        user_id = self.user_id(now)
        read = api.run(mentions(user_id, cursor, self.config.listening().matcher(), now), now)
        searched: Searched = None
        if search_due(self.config, cursor, now):
            try:
                searched = api.run(search(self.config, user_id, cursor, self.config.query_length, now), now)
            except ConnectorError as exc:
                searched = exc
        return self.read_result(cursor, read, searched, api.rotated, now)

    def read_result(self, cursor: Mapping[str, Any], read: Timeline, searched: Searched,
                    rotated: Mapping[str, Any] | None, now: datetime) -> FetchResult:
        """The mentions read and the keyword search's outcome as one batch. A search that failed after the
        mentions were read keeps them and their cursor (and a renewed token: X rotated the refresh token): its
        own positions stay where they were, and the failure is a warning the installation's health shows; a rate
        limit also holds the search back (``cursor["search_retry_at"]``) while the mentions go on."""
        saved = with_mentions(cursor, read)
        timelines = [read]
        warnings: list[str] = []
        if not (self.config.keywords or self.config.hashtags):
            saved.pop("search", None)
            saved.pop(SEARCH_RETRY, None)
        elif isinstance(searched, ConnectorError):
            log.warning("X recent search failed after the mentions were read; kept for the next read: %s", searched)
            warnings.append(f"X recent search for the keywords failed (the mentions were read; the keywords are "
                            f"searched from where they were next time): {searched}")
            if isinstance(searched, RateLimited):
                saved[SEARCH_RETRY] = searched.retry_at.isoformat()
        elif searched is None:
            warnings.append(f"X recent search is rate limited until {saved.get(SEARCH_RETRY, '?')}; the keywords "
                            "are searched from where they were after that")
        else:
            found, part = searched
            timelines.extend(found)
            saved.pop("search", None)
            saved.pop(SEARCH_RETRY, None)
            saved.update(part)
        return combined(timelines, saved, rotated, warnings=warnings)

    def unfinished(self, cursor: Mapping[str, Any], now: datetime) -> bool:
        """Whether a catch-up stopped at its page limit with older posts still to read (mentions or a search
        query that may run now)."""
        if cursor_id(cursor, "until_id"):
            return True
        positions = cursor.get("search")
        return isinstance(positions, Mapping) and search_due(self.config, cursor, now) and any(
            isinstance(p, Mapping) and cursor_id(p, "until_id") for p in positions.values())

    # -- streaming ---------------------------------------------------------------------------------------------

    def stream(self, cursor: Mapping[str, Any], http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
        """The Activity API stream, merged with the filtered stream when there are keywords: see
        :mod:`caredesk.connectors.builtin.x.stream`."""
        return x_stream.stream(self, cursor, http)

    def bearer(self) -> str:
        token = self._credentials().bearer_token
        if token is None:
            raise Refused("streaming from X needs the app's bearer token (credentials bearer_token)")
        return token.get_secret_value()

    def async_client(self) -> XClient:
        """A client with the user's token for an async conversation (its sync ``http`` is unused)."""
        return XClient(self.config.api, self.credentials, None)

    async def auser_id(self, api: XClient, http: httpx.AsyncClient, now: datetime) -> str:
        if not self.config.user_id and self._identity is None:
            self._identity = await api.arun(http, _me(), now)
        return self.user_id(now)

    def rule_prefix(self, user_id: str) -> str:
        return tag_prefix(user_id)

    def ensure_subscriptions(self, now: datetime) -> list[str]:
        """Create the Activity API subscriptions (mentions, replies, quotes, DMs) for the brand's user id that do
        not exist yet (user token: these are private events); the event types created. Also done on each stream
        connection."""
        with self._api() as api:
            return api.run(ensure_subscriptions(self.user_id(now), self.config.webhook_id), now)

    async def aensure_subscriptions(self, api: XClient, http: httpx.AsyncClient, user_id: str,
                                    now: datetime) -> list[str]:
        return await api.arun(http, ensure_subscriptions(user_id, self.config.webhook_id), now)

    def subscribe(self, now: datetime) -> Subscribed:
        """Register the webhook with X when ``webhook_url`` is set (app bearer token; X checks it with a CRC
        request the desk answers) and make the Activity API subscriptions exist and deliver to it (user token);
        idempotent. For ``caredesk connector subscribe``, which stores the webhook id learned: see
        :mod:`caredesk.connectors.builtin.x.registration`."""
        hook: WebhookSync | None = None
        webhook_id = self.config.webhook_id
        if self.config.webhook_url:
            creds = self._credentials()
            if creds.consumer_secret is None:
                raise Refused("X checks the webhook with a CRC request the desk answers with the app's consumer "
                              "secret: set credentials consumer_secret first")
            if creds.bearer_token is None:
                raise Refused("registering a webhook with X needs the app's bearer token (credentials bearer_token)")
            with httpx.Client(timeout=TIMEOUT) if self.http is None else _borrowed(self.http) as http:
                hook = run_app(http, self.config.api, creds.bearer_token.get_secret_value(),
                               ensure_webhook(self.config.webhook_url), now)
            webhook_id = hook.webhook.id
        user_id = self.user_id(now)
        with self._api() as api:
            sync = api.run(sync_subscriptions(user_id, webhook_id), now)
        handle = self._identity.handles[0] if self._identity else ""
        return Subscribed(user_id, handle, hook, webhook_id, sync)

    def _rules(self, user_id: str) -> Conversation[RulesSync]:
        try:
            queries = build_queries(self.config, user_id, self.config.query_length)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        prefix = self.rule_prefix(user_id)
        return sync_rules(wanted_rules(queries, prefix), prefix)

    def ensure_rules(self, now: datetime) -> RulesSync:
        """Make the filtered stream's rules of this brand match the keywords (app bearer token)."""
        user_id = self.user_id(now)
        with httpx.Client(timeout=TIMEOUT) if self.http is None else _borrowed(self.http) as http:
            return run_app(http, self.config.api, self.bearer(), self._rules(user_id), now)

    async def aensure_rules(self, http: httpx.AsyncClient, user_id: str, now: datetime) -> RulesSync:
        return await arun_app(http, self.config.api, self.bearer(), self._rules(user_id), now)

    async def acatch_up(self, api: XClient, http: httpx.AsyncClient, user_id: str, cursor: Mapping[str, Any],
                        now: datetime) -> FetchResult:
        """The mentions timeline and, with keywords, recent search from ``cursor`` (a stream connection's
        catch-up: what came while no stream was open), like a poll."""
        read = await api.arun(http, mentions(user_id, cursor, self.config.listening().matcher(), now), now)
        searched: Searched = None
        if search_due(self.config, cursor, now):
            try:
                searched = await api.arun(http, search(self.config, user_id, cursor, self.config.query_length, now),
                                          now)
            except ConnectorError as exc:
                searched = exc
        return self.read_result(cursor, read, searched, api.rotated, now)

    # -- webhook -----------------------------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> WebhookAnswer | None:
        secret = self._credentials().consumer_secret
        return webhook.verify(secret.get_secret_value() if secret else None, request)

    def parse(self, body: bytes, now: datetime) -> FetchResult:
        return webhook.parse(body, self.config.user_id, self.config.listening().matcher(), now)

    # -- replying ----------------------------------------------------------------------------------------------

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        """``POST /2/tweets`` answering the parent. Checked against X's rules first (no request when too long);
        a 403 (parent deleted or hidden, replies restricted, author did not summon the brand) → :class:`Refused`
        with X's own reason."""
        problem = self.reply_rules().problem(reply.text, direct=reply.is_direct, summoned=reply.summoned)
        if problem:
            raise Refused(problem)
        if reply.is_direct:
            with self._api() as api:
                try:
                    return dm.send_dm(api, reply, now)
                except TokenExpired as exc:
                    raise RateLimited(str(exc), now + TOKEN_WAIT) from exc
        if not reply.in_reply_to_external_id.isdigit():
            raise Refused(f"not an X post id: {reply.in_reply_to_external_id[:40]!r}")
        body = {"text": reply.text, "reply": {"in_reply_to_tweet_id": reply.in_reply_to_external_id}}
        with self._api() as api:
            try:
                response = api.request("POST", "/2/tweets", "publish the reply", now, json=body)
            except TokenExpired as exc:
                # Certainly not published (X answered 401); renewing here would lose the rotated refresh token.
                raise RateLimited(str(exc), now + TOKEN_WAIT) from exc
        answer = json_of(response, "publish the reply")
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise Transient(f"X's answer to the reply has no post id ({platform_message(response)})")
        return self._sent(str(data["id"]), now)

    def _sent(self, tweet_id: str, created_at: datetime) -> SentReply:
        handle = self._identity.handles[0] if self._identity else "i"
        return SentReply(external_id=tweet_id, created_at=created_at, url=f"https://x.com/{handle}/status/{tweet_id}")

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        """Our post answering the parent with the reply's text among the brand's latest posts
        (``GET /2/users/:id/tweets``), or None once the whole timeline was read without it; :class:`CannotTell`
        when X cannot be asked, or the reply could be older than the pages read."""
        try:
            return self._find(reply, now)
        except (Transient, Refused, TokenExpired) as exc:
            raise CannotTell(f"cannot ask X whether the reply was published: {exc}") from exc

    def _find(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        user_id = self.user_id(now)
        if reply.is_direct:
            with self._api() as api:
                return dm.find_dm(api, reply, user_id, now, _comparable)
        wanted = _comparable(reply.text)
        params: dict[str, Any] = {"max_results": 100, "tweet.fields": "created_at,referenced_tweets"}
        with self._api() as api:
            for _ in range(FIND_PAGES):
                response = api.request("GET", f"/2/users/{user_id}/tweets", "read the brand's own posts", now,
                                       params=params)
                body = json_of(response, "read the brand's own posts")
                data = body.get("data") if isinstance(body, Mapping) else None
                for tweet in data if isinstance(data, list) else []:
                    if not isinstance(tweet, Mapping) or not isinstance(tweet.get("id"), str):
                        continue
                    text = tweet.get("text")
                    if replied_to(tweet) == reply.in_reply_to_external_id and isinstance(text, str) \
                            and _comparable(text) == wanted:
                        created = tweet.get("created_at")
                        try:
                            when = datetime.fromisoformat(created.replace("Z", "+00:00")) \
                                if isinstance(created, str) else now
                        except ValueError:
                            when = now
                        return self._sent(str(tweet["id"]), when)
                meta = body.get("meta") if isinstance(body, Mapping) else None
                token = meta.get("next_token") if isinstance(meta, Mapping) else None
                if not isinstance(token, str) or not token:
                    return None
                params["pagination_token"] = token
        raise CannotTell(f"the reply is not among the brand's latest {FIND_PAGES * 100} posts on X; older ones "
                         "were not read")

    # -- compliance --------------------------------------------------------------------------------------------

    def compliance_every(self) -> timedelta:
        return timedelta(hours=self.config.compliance_hours)

    def compliance_window(self) -> timedelta:
        return timedelta(days=self.config.compliance_days)

    def compliance_sweep(self, external_ids: Sequence[str], now: datetime) -> FetchResult:
        """Deletions and edits on X of the stored posts ``external_ids`` (at most 100): see
        :mod:`caredesk.connectors.builtin.x.compliance`. The reads are billed as post reads (``usage``)."""
        fields = {"tweet.fields": TWEET_FIELDS, "expansions": "author_id", "user.fields": USER_FIELDS}
        with self._api() as api:
            previous, api.may_refresh = api.may_refresh, True  # rotated tokens travel back in the result
            try:
                found = compliance.sweep(api, external_ids, now, fields, self.config.listening().matcher())
            finally:
                api.may_refresh = previous
        return FetchResult(posts=[], cursor={}, changes=found.changes, credentials=api.rotated, usage=found.usage)
