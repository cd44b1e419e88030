"""The X provider: mentions of the brand's account (polled), and replies to them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from caredesk.connectors.base import (
    CannotTell,
    Capability,
    FetchResult,
    Identity,
    MalformedPayload,
    NormalizedPost,
    OutboundReply,
    Provider,
    ProviderConfig,
    ProviderCredentials,
    RateLimited,
    Refused,
    RejectedRecord,
    ReplyRules,
    SentReply,
    Transient,
)
from caredesk.connectors.builtin.x import compliance, dm
from caredesk.connectors.builtin.x.api import TokenExpired, XClient, json_of, platform_message
from caredesk.connectors.builtin.x.config import XConfig, XCredentials
from caredesk.connectors.builtin.x.parse import id_key, post_from_tweet, replied_to, users_by_id
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, PriceTable
from caredesk.connectors.length import URL_RE, x_reply_rules

TIMEOUT = httpx.Timeout(20.0, connect=10.0)
TWEET_FIELDS = ("created_at,conversation_id,in_reply_to_user_id,referenced_tweets,lang,edit_history_tweet_ids,"
                "author_id,note_tweet")
USER_FIELDS = "username,name,public_metrics,verified"
# A reply whose token expired waits for the next poll to renew it (polls run every minute or so).
TOKEN_WAIT = timedelta(minutes=2)
MAX_PAGES = 10  # of 100 mentions each, per poll
FIND_PAGES = 2  # of the brand's own latest 100 posts, when looking for a reply whose answer was lost
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")


def _cursor_id(cursor: Mapping[str, Any], name: str) -> str:
    value = cursor.get(name)
    return value if isinstance(value, str) and value.isdigit() else ""


@contextmanager
def _borrowed(http: httpx.Client) -> Iterator[httpx.Client]:
    yield http  # the caller's client: not ours to close


def _comparable(text: str) -> str:
    """A reply's text as X shows it back: without the leading @mentions X may add, URLs as t.co links."""
    text = unicodedata.normalize("NFC", text).strip()
    text = _LEADING_MENTIONS.sub("", text)
    text = URL_RE.sub("<url>", text)
    return " ".join(text.split())


class XProvider(Provider[XConfig]):
    """Mentions of the brand's account as summoned posts, polled with ``since_id``; replies as posts with
    ``reply.in_reply_to_tweet_id``. X has no idempotency key: a send whose answer was lost is looked for among
    the brand's own latest posts (:meth:`find_reply`) before anything is sent again."""

    key: ClassVar[str] = "x"
    display_name: ClassVar[str] = "X"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.POLL, Capability.REPLY})
    config_model: ClassVar[type[ProviderConfig]] = XConfig
    credentials_model: ClassVar[type[ProviderCredentials]] = XCredentials
    idempotent_replies: ClassVar[bool] = False
    rotates_credentials: ClassVar[bool] = True
    prices: ClassVar[PriceTable | None] = DEFAULT_X_PRICES
    compliance_batch: ClassVar[int] = compliance.BATCH

    def __init__(self, config: XConfig, credentials: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, credentials, http)
        self._identity: Identity | None = None
        self._client: XClient | None = None
        self._depth = 0

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
            moment = now or datetime.now(UTC)
            with self._api() as api:
                response = api.request("GET", "/2/users/me", "read the brand's account", moment,
                                       params={"user.fields": "username,name"})
            body = json_of(response, "read the brand's account")
            data = body.get("data") if isinstance(body, Mapping) else None
            if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) \
                    or not isinstance(data.get("username"), str):
                raise Transient("X's answer about the brand's account has no id or username")
            name = data.get("name")
            self._identity = Identity(account_ids=(data["id"],), handles=(data["username"],),
                                      display_name=name if isinstance(name, str) else "")
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
        """Mentions newer than ``cursor["since_id"]``; the first poll of an installation reads the latest page
        only. The brand's own posts are left out.

        X pages newest first, so a catch-up longer than :data:`MAX_PAGES` cannot simply save the newest id (the
        older pages would be skipped): the cursor then keeps the floor, the oldest id read (``until_id``) and the
        newest (``newest``), and the next poll goes on below ``until_id`` until the floor is reached."""
        with self._api() as api:
            previous, api.may_refresh = api.may_refresh, True  # the rotated tokens travel back in the FetchResult
            try:
                result = self._fetch(cursor, now)
                if not self.config.direct_messages:
                    return result
                dms = dm.fetch_dms(api, cursor, self.user_id(now), now)
            finally:
                api.may_refresh = previous
        shift = len(result.rejected)
        rejected = [*result.rejected, *(RejectedRecord(r.position + shift, r.reason, r.raw) for r in dms.rejected)]
        return FetchResult(posts=[*result.posts, *dms.posts], cursor={**result.cursor, **dms.cursor},
                           rejected=rejected, credentials=api.rotated, rate_limit_remaining=result.rate_limit_remaining,
                           usage=[*result.usage, *dms.usage])

    def _fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        user_id = self.user_id(now)
        floor = _cursor_id(cursor, "since_id")
        until = _cursor_id(cursor, "until_id") if floor else ""
        newest = _cursor_id(cursor, "newest") if until else ""
        newest = newest or floor
        matcher = self.config.listening().matcher()
        params: dict[str, Any] = {"max_results": 100, "expansions": "author_id", "tweet.fields": TWEET_FIELDS,
                                  "user.fields": USER_FIELDS}
        if floor:
            params["since_id"] = floor
        if until:
            params["until_id"] = until
        posts: list[NormalizedPost] = []
        rejected: list[RejectedRecord] = []
        oldest = until
        remaining: int | None = None
        position = 0
        finished = False
        with self._api() as api:
            for _ in range(MAX_PAGES):
                response = api.request("GET", f"/2/users/{user_id}/mentions", "read the brand's mentions", now,
                                       params=params)
                header = response.headers.get("x-rate-limit-remaining", "").strip()
                remaining = int(header) if header.isdigit() else remaining
                body = json_of(response, "read the brand's mentions")
                if not isinstance(body, Mapping):
                    raise Transient("X's mentions answer is not a JSON object")
                users = users_by_id(body.get("includes"))
                data = body.get("data") or []
                for tweet in data if isinstance(data, list) else []:
                    tweet_id = tweet.get("id") if isinstance(tweet, Mapping) else None
                    if isinstance(tweet_id, str) and tweet_id.isdigit():
                        # A broken record still moves the cursor: it is rejected once, not on every poll.
                        newest = max(newest or tweet_id, tweet_id, key=id_key)
                        oldest = min(oldest or tweet_id, tweet_id, key=id_key)
                    try:
                        post = post_from_tweet(tweet, users, matcher, summoned=True)
                    except MalformedPayload as exc:
                        rejected.append(RejectedRecord(position=position, reason=str(exc), raw=tweet))
                    else:
                        if post.author.external_id != user_id:
                            posts.append(post)
                    position += 1
                meta = body.get("meta")
                token = meta.get("next_token") if isinstance(meta, Mapping) else None
                if not floor or not isinstance(token, str) or not token:
                    finished = True
                    break
                params["pagination_token"] = token
            rotated = api.rotated
        posts.sort(key=lambda p: id_key(p.external_id))
        if finished:
            saved: dict[str, Any] = {"since_id": newest} if newest else {}
        else:
            saved = {"since_id": floor, "until_id": oldest, "newest": newest}
        return FetchResult(posts=posts, cursor=saved, rejected=rejected, credentials=rotated,
                           rate_limit_remaining=remaining)

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
