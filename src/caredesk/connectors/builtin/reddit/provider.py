"""The Reddit provider: the brand account's inbox and mentions, keyword searches in chosen subreddits (polled,
within the 100 requests a minute Reddit allows an app), and replies with ``/api/comment``."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
from caredesk.connectors.builtin.reddit.api import (
    DEFAULT_RETRY,
    RedditClient,
    api_errors,
    aware_utc,
    json_of,
    wait_asked,
)
from caredesk.connectors.builtin.reddit.config import RedditConfig, RedditCredentials
from caredesk.connectors.builtin.reddit.parse import FULLNAME_RE, SITE, created, fullname, post_from_thing
from caredesk.connectors.builtin.reddit.sources import REFUSED_SECONDS, Mark, Source, SourceState, sources
from caredesk.connectors.listening import KeywordMatcher

TIMEOUT = httpx.Timeout(20.0, connect=10.0)
MAX_LENGTH = 10_000  # characters of markdown in a comment or message reply
# Requests left in Reddit's window below which a poll stops: replies must still get through.
RESERVE = 10
MINUTE_BUDGET = 100 - RESERVE  # requests polls may make in any minute, of the 100 Reddit allows
PAGES_PER_TURN = 3  # of 100 things, per source per poll: a busy source cannot spend a poll on its own
FIND_PAGES = 2  # of the brand's latest 100 comments (or sent messages), when a reply's answer was lost

SETUP_NOTICE = (
    "Reddit must approve API access first. Since November 2025 (Reddit's Responsible Builder Policy) a new app "
    "cannot be made self-service: request access from Reddit, and wait for its approval before connecting; each "
    "account may have one app. Then create it (a script app for the brand's own account, or an installed or web "
    "app and caredesk connector authorize reddit) at reddit.com/prefs/apps. Reddit allows 100 requests a "
    "minute per app, shared by everything polled here and by the replies."
)


def _comparable(text: str) -> str:
    """A reply's markdown as Reddit shows it back (it trims the ends and may tidy whitespace)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _listing(body: Any, what: str) -> tuple[list[Any], str]:
    data = body.get("data") if isinstance(body, Mapping) and body.get("kind") == "Listing" else None
    if not isinstance(data, Mapping):
        raise Transient(f"Reddit's answer to {what} is not a listing")
    children = data.get("children")
    after = data.get("after")
    return (list(children) if isinstance(children, list) else [],
            after if isinstance(after, str) and FULLNAME_RE.fullmatch(after) else "")


class RedditProvider(Provider[RedditConfig]):
    """Private messages (direct) and replies and mentions of the brand account (summoned) from its inbox; posts
    in chosen subreddits that match the keywords (not summoned: Reddit's rules allow answering them). Sources
    take turns (round-robin, from the cursor), and a poll stops before it spends its share of Reddit's 100
    requests a minute. Replies are comments (or message replies) with ``/api/comment``; Reddit has no idempotency
    key, so a send whose answer was lost is looked for among the brand's own latest comments."""

    key: ClassVar[str] = "reddit"
    display_name: ClassVar[str] = "Reddit"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.POLL, Capability.REPLY, Capability.DIRECT_MESSAGES})
    config_model: ClassVar[type[ProviderConfig]] = RedditConfig
    credentials_model: ClassVar[type[ProviderCredentials]] = RedditCredentials
    idempotent_replies: ClassVar[bool] = False
    setup_notice: ClassVar[str] = SETUP_NOTICE

    def __init__(self, config: RedditConfig, credentials: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        super().__init__(config, credentials, http)
        self._identity: Identity | None = None
        self._client: RedditClient | None = None

    @property
    def platform(self) -> str:
        return "reddit"

    @contextmanager
    def _api(self) -> Iterator[RedditClient]:
        """The client (kept, with its token, for this provider's life) over the injected ``http``, or over one
        opened for this call."""
        if self.http is not None:
            if self._client is None:
                self._client = RedditClient(self.config, self.credentials, self.http)
            yield self._client
            return
        with httpx.Client(timeout=TIMEOUT) as http:
            if self._client is None:
                self._client = RedditClient(self.config, self.credentials, http)
            previous, self._client.http = self._client.http, http
            try:
                yield self._client
            finally:
                self._client.http = previous

    def reply_rules(self) -> ReplyRules:
        return ReplyRules(max_length=MAX_LENGTH, answers_unsummoned=True, direct_messages=True)

    # -- who ---------------------------------------------------------------------------------------------------

    def whoami(self, now: datetime | None = None) -> Identity:
        if self._identity is None:
            with self._api() as api:
                response = api.request("GET", "/api/v1/me", "read the brand's account", now or datetime.now(UTC))
            body = json_of(response, "read the brand's account")
            name = body.get("name") if isinstance(body, Mapping) else None
            account_id = body.get("id") if isinstance(body, Mapping) else None
            if not isinstance(name, str) or not name or not isinstance(account_id, str) or not account_id:
                raise Transient("Reddit's answer about the brand's account has no name or id")
            self._identity = Identity(account_ids=(f"t2_{account_id}",), handles=(name,), display_name=name)
        return self._identity

    def learned_config(self) -> Mapping[str, Any]:
        """The brand's username, kept at setup so that polls need not ask ``/api/v1/me`` every time."""
        if self.config.username or self._identity is None:
            return {}
        return {"username": self._identity.handles[0]}

    def username(self, now: datetime) -> str:
        return self.config.username or self.whoami(now).handles[0]

    # -- reading -----------------------------------------------------------------------------------------------

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """New things from each source, in turns: the poll starts at the source the cursor names (``next``) and
        stops when its share of requests is spent (``requests_per_poll``, and at most :data:`MINUTE_BUDGET` in
        any minute, counted in the cursor) or Reddit's window has fewer than :data:`RESERVE` left; the sources it
        did not reach go first next time. With Reddit's window spent, the cursor says when it resets
        (``resume_at``) and no poll asks before. A source read less than half a minute ago is left alone (Reddit
        would answer from its cache). The first read of a source takes its newest page only."""
        resume_at = _time(cursor.get("resume_at"))
        if resume_at is not None and resume_at > now:
            return FetchResult(posts=[], cursor=dict(cursor))
        clock = now.timestamp()
        minute_start, minute_used = _minute(cursor.get("minute"), clock)
        limit = min(self.config.requests_per_poll, MINUTE_BUDGET - minute_used)
        states_in = cursor.get("sources")
        states_in = states_in if isinstance(states_in, Mapping) else {}
        turn = sources(self.config)
        keys = [s.key for s in turn]
        start = keys.index(cursor["next"]) if cursor.get("next") in keys else 0
        turn = turn[start:] + turn[:start]
        states = {key: SourceState.from_json(states_in.get(key)) for key in keys}
        due = [s for s in turn if not states[s.key].fresh(clock)]
        if not due or limit <= 0:
            return FetchResult(posts=[], cursor=dict(cursor))
        matcher = self.config.listening().matcher()
        read = _Read()
        next_key = ""
        resume = None
        with self._api() as api:
            budget = _Budget(api.requests, limit)
            api.remaining = None  # what an earlier call heard: the window may have started again since
            me = self.username(now).casefold()
            refused: list[Refused] = []
            for source in due:
                if budget.stop(api):
                    next_key = source.key
                    break
                try:
                    states[source.key] = self._read(api, source, states[source.key], matcher, me, now, read, budget)
                except Refused as exc:
                    # One private or banned subreddit must not stop the others: it waits, and is reported.
                    refused.append(exc)
                    read.refused(source, exc)
                    states[source.key].refused_until = clock + REFUSED_SECONDS
            else:
                next_key = turn[1].key if len(turn) > 1 else ""  # a fresh start next time: the turns rotate
            if api.remaining is not None and api.remaining <= RESERVE:
                resume = api.resets_at(now)
            remaining, renewed, spent = api.remaining, api.renewed, budget.spent(api)
        if refused and len(refused) == len(due):
            raise refused[0]  # nothing could be read: the installation's health must say why
        saved: dict[str, Any] = {"sources": {key: states[key].to_json() for key in keys},
                                 "minute": {"start": minute_start, "requests": minute_used + spent}}
        if next_key:
            saved["next"] = next_key
        if resume is not None:
            saved["resume_at"] = resume.isoformat()
        read.posts.sort(key=lambda p: p.created_at)
        return FetchResult(posts=read.posts, cursor=saved, rejected=read.rejected, credentials=renewed,
                           rate_limit_remaining=None if remaining is None else int(remaining))

    def _read(self, api: RedditClient, source: Source, state: SourceState, matcher: KeywordMatcher, me: str,
              now: datetime, read: _Read, budget: _Budget) -> SourceState:
        """One turn of one source; returns its state to save."""
        what = f"read {source.key}"
        params: dict[str, str] = {**source.params, "limit": "100"}
        floor = state.floor
        pending = state.pending or (Mark(floor.since, list(floor.seen)) if floor else Mark(0.0))
        after = state.after
        for page in range(PAGES_PER_TURN):
            if page and budget.stop(api):
                break
            if after:
                params["after"] = after
            children, next_after = _listing(json_of(api.request("GET", source.path, what, now, params=params),
                                                    what), what)
            reached = False
            for thing in children:
                name, when = fullname(thing), created(thing)
                if name and when is not None:
                    if floor is not None and floor.passed(name, when):
                        reached = True
                        continue
                    pending.note(name, when)
                read.take(thing, source, matcher, me)
            if floor is None or reached or not next_after or not children:
                return SourceState(pending, read_at=now.timestamp())  # caught up
            after = next_after
        return SourceState(floor, after, pending, now.timestamp())

    # -- replying ----------------------------------------------------------------------------------------------

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        """``POST /api/comment`` with the parent's fullname: a comment under a post (``t3_``) or comment
        (``t1_``), or a reply to a private message (``t4_``). Reddit says no in ``json.errors`` of a 200 answer
        (``THREAD_LOCKED``, ``DELETED_COMMENT``, …): :class:`Refused` with its reason; ``RATELIMIT`` ("try again
        in 6 minutes"): :class:`RateLimited` until then."""
        parent = reply.in_reply_to_external_id
        problem = self.reply_rules().problem(reply.text)
        if problem:
            raise Refused(problem)
        if not FULLNAME_RE.fullmatch(parent) or parent[:3] not in ("t1_", "t3_", "t4_"):
            raise Refused(f"not a Reddit post, comment or message: {parent[:40]!r}")
        if reply.is_direct and not parent.startswith("t4_"):
            raise Refused("on Reddit a private reply answers a private message; this is a public post or comment")
        data = {"thing_id": parent, "text": reply.text, "api_type": "json"}
        with self._api() as api:
            response = api.request("POST", "/api/comment", "publish the reply", now, data=data)
        body = json_of(response, "publish the reply")
        errors = api_errors(body)
        for error in errors:
            if error.code == "RATELIMIT":
                retry_at = wait_asked(error.message, now) or now + DEFAULT_RETRY
                raise RateLimited(f"Reddit asks to wait before replying ({error.message}); retry at "
                                  f"{retry_at:%H:%M:%S} UTC", retry_at)
        if errors:
            reasons = "; ".join(f"{e.message or e.code} ({e.code})" for e in errors)
            raise Refused(f"Reddit refused the reply: {reasons}")
        wrapper = body.get("json") if isinstance(body, Mapping) else None
        data_out = wrapper.get("data") if isinstance(wrapper, Mapping) else None
        things = data_out.get("things") if isinstance(data_out, Mapping) else None
        thing = things[0] if isinstance(things, list) and things else None
        if not fullname(thing) or not isinstance(thing, Mapping):
            raise Transient("Reddit's answer to the reply names no comment or message")
        return _sent(thing["data"], now)

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        """Our comment (or message, for a private message) answering the parent with the reply's text among the
        brand's latest (``/user/{me}/comments``, ``/message/sent``), or None once all of them were read without
        it; :class:`CannotTell` when Reddit cannot be asked, or the reply could be older than the pages read."""
        try:
            return self._find(reply, now)
        except (Transient, Refused, RateLimited) as exc:
            raise CannotTell(f"cannot ask Reddit whether the reply was published: {exc}") from exc

    def _find(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        parent = reply.in_reply_to_external_id
        if parent.startswith("t4_"):
            path, params = "/message/sent", {"limit": "100"}
        else:
            path, params = f"/user/{self.username(now)}/comments", {"sort": "new", "limit": "100", "type": "comments"}
        wanted = _comparable(reply.text)
        with self._api() as api:
            for _ in range(FIND_PAGES):
                children, after = _listing(json_of(api.request("GET", path, "read the brand's own replies", now,
                                                               params=params), "read the brand's own replies"),
                                           "read the brand's own replies")
                for thing in children:
                    data = thing.get("data") if isinstance(thing, Mapping) else None
                    if fullname(thing) and isinstance(data, Mapping) and data.get("parent_id") == parent \
                            and isinstance(data.get("body"), str) and _comparable(data["body"]) == wanted:
                        return _sent(data, now)
                if not after:
                    return None
                params = {**params, "after": after}
        raise CannotTell(f"the reply is not among the brand's latest {FIND_PAGES * 100} on Reddit; older ones were "
                         "not read")


@dataclass(frozen=True, slots=True)
class _Budget:
    """The requests one poll may make, counted from the client's count when it began."""

    first_request: int
    limit: int

    def spent(self, api: RedditClient) -> int:
        return api.requests - self.first_request

    def stop(self, api: RedditClient) -> bool:
        return self.spent(api) >= self.limit or (api.remaining is not None and api.remaining <= RESERVE)


def _minute(raw: Any, now: float) -> tuple[float, int]:
    """The minute the cursor counts requests in (its start, unix seconds) and how many it has made; a new one
    when that minute is over."""
    if isinstance(raw, Mapping):
        start, used = raw.get("start"), raw.get("requests")
        if isinstance(start, int | float) and isinstance(used, int) and 0 <= now - start < 60:
            return float(start), max(0, used)
    return now, 0


class _Read:
    """What one poll has gathered: posts (each fullname once: a mention is in the inbox too), and rejects."""

    def __init__(self) -> None:
        self.posts: list[NormalizedPost] = []
        self.rejected: list[RejectedRecord] = []
        self._names: set[str] = set()
        self._position = 0

    def refused(self, source: Source, exc: Refused) -> None:
        self.rejected.append(RejectedRecord(position=self._position, reason=f"{source.key}: {exc}"))
        self._position += 1

    def take(self, thing: Any, source: Source, matcher: KeywordMatcher, me: str) -> None:
        position = self._position
        self._position += 1
        try:
            post = post_from_thing(thing, matcher, summoned=source.summoned)
        except MalformedPayload as exc:
            self.rejected.append(RejectedRecord(position=position, reason=f"{source.key}: {exc}", raw=thing))
            return
        if post is None or post.external_id in self._names or post.author.handle.casefold() == me:
            return  # gone, already taken from another source, or the brand's own
        if not source.summoned and not post.matched_keywords:
            return  # Reddit's search also finds near misses; the brand's keywords decide
        self._names.add(post.external_id)
        self.posts.append(post)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.utcoffset() is not None else None


def _sent(data: Mapping[str, Any], now: datetime) -> SentReply:
    name = str(data["name"])
    permalink = data.get("permalink")
    if isinstance(permalink, str) and permalink.startswith("/"):
        url = SITE + permalink
    elif name.startswith("t4_"):
        url = f"{SITE}/message/messages/{name[3:]}"
    else:
        url = ""
    return SentReply(external_id=name, created_at=aware_utc(data.get("created_utc")) or now, url=url)

