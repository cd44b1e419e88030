"""Blogs and news: RSS 2.0, RSS 1.0 and Atom feeds watched for a brand's names and keywords. Read-only.

Each poll asks every feed whether it changed (a conditional GET, a few at a time), parses the changed ones with
feedparser, and turns the entries that mention the brand into posts whose link is the article: nobody answers
a news article through an API, so an agent opens the page and answers there.

One feed never stops the others. A feed that fails (rate-limited, down, gone, not a feed) is reported as a
rejection naming its address and reason and remembered in the cursor (a rate-limited one is not asked again
before its Retry-After), while the other feeds' posts are delivered. Only when no feed could be read at all does
the poll itself fail, with the error that explains it: :class:`RateLimited` when every feed asked us to wait,
:class:`Transient` when any failure may pass, else :class:`ConnectorError`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import feedparser
import httpx
from pydantic import AfterValidator, Field, StringConstraints, field_validator

from caredesk.connectors.base import (
    Capability,
    ConnectorError,
    FetchResult,
    Identity,
    NormalizedPost,
    OutboundReply,
    Provider,
    ProviderConfig,
    RateLimited,
    Refused,
    RejectedRecord,
    ReplyRules,
    SentReply,
    Transient,
)
from caredesk.connectors.builtin.rss.cursor import FeedState, read_cursor, write_cursor
from caredesk.connectors.builtin.rss.entries import EntryFilter, FeedInfo, feed_info, language_tag, read_entries
from caredesk.connectors.builtin.rss.fetching import FeedResponse, get_feed
from caredesk.connectors.listening import KeywordMatcher

READ_ONLY = "blog posts and news articles are answered on the page itself: open the link"
MAX_FEEDS = 200
# Feeds asked at once: enough that 200 slow feeds fit in a poll, few enough to be polite to a shared host.
CONCURRENT_FEEDS = 8
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

T = TypeVar("T")
_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _feed_url(value: str) -> str:
    value = value.strip()
    if len(value) > 2000:
        raise ValueError(f"{value[:60]!r}… is longer than 2,000 characters")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{value[:80]!r} contains spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value[:80]!r} is not an http:// or https:// address")
    return value


FeedUrl = Annotated[str, AfterValidator(_feed_url)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RssConfig(ProviderConfig):
    feeds: list[FeedUrl] = Field(
        min_length=1, max_length=MAX_FEEDS, description="The feeds' addresses (RSS 2.0, RSS 1.0 or Atom)."
    )
    keywords: list[Phrase] = Field(
        min_length=1, max_length=2000,
        description="The brand's names and keywords: an entry mentioning any (whole words, any case) is delivered.",
    )
    exclude: list[Phrase] = Field(
        default_factory=list, max_length=2000, description="An entry mentioning any of these is dropped."
    )
    languages: list[str] = Field(
        default_factory=list, max_length=50,
        description="Deliver only entries in these languages (en, pt-br...) where the feed or entry says which.",
    )

    @field_validator("feeds")
    @classmethod
    def _unique_feeds(cls, feeds: list[str]) -> list[str]:
        return list(dict.fromkeys(feeds))

    @field_validator("languages")
    @classmethod
    def _language_tags(cls, languages: list[str]) -> list[str]:
        tags = []
        for value in languages:
            tag = language_tag(value)
            if not tag:
                raise ValueError(f"{value[:20]!r} is not a language tag such as en or pt-BR")
            tags.append(tag)
        return list(dict.fromkeys(tags))


class ReadOnlyRules(ReplyRules):
    """Feeds take no replies: every text is refused, with the reason and what to do instead."""

    def __init__(self) -> None:
        super().__init__(max_length=0, unit="characters (this channel is read-only)", answers_unsummoned=False,
                         direct_messages=False)

    def problem(self, text: str, *, direct: bool = False, summoned: bool = True,
                ai_written: bool = False) -> str | None:
        return READ_ONLY


@dataclass(frozen=True, slots=True)
class _FeedOutcome:
    url: str
    state: FeedState
    posts: Sequence[NormalizedPost] = ()
    rejected: Sequence[RejectedRecord] = ()
    error: ConnectorError | None = None
    title: str = ""


class RssProvider(Provider[RssConfig]):
    key: ClassVar[str] = "rss"
    display_name: ClassVar[str] = "Blogs and news (RSS/Atom)"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.POLL})
    config_model: ClassVar[type[ProviderConfig]] = RssConfig

    @property
    def platform(self) -> str:
        return "rss"

    @cached_property
    def filters(self) -> EntryFilter:
        return EntryFilter(KeywordMatcher(self.config.keywords, self.config.exclude), tuple(self.config.languages))

    def reply_rules(self) -> ReplyRules:
        return ReadOnlyRules()

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        raise Refused(READ_ONLY)

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """New entries mentioning the brand from every feed due; see the module's docstring for failures."""
        now = now.astimezone(UTC)
        previous = read_cursor(cursor)
        states = {url: previous.get(url, FeedState()) for url in self.config.feeds}
        waiting = {url: s.retry_at for url, s in states.items() if s.retry_at is not None and s.retry_at > now}
        due = [url for url in self.config.feeds if url not in waiting]
        filters = self.filters  # built here, once, rather than by whichever feed's thread gets there first
        outcomes = self._each_feed(due, lambda http, url: self._poll_feed(http, url, states[url], filters, now))
        posts: list[NormalizedPost] = []
        rejected: list[RejectedRecord] = []
        errors: list[ConnectorError] = []
        for outcome in outcomes:
            states[outcome.url] = outcome.state
            posts.extend(outcome.posts)
            rejected.extend(outcome.rejected)
            if outcome.error is not None:
                errors.append(outcome.error)
                position = self.config.feeds.index(outcome.url) + 1
                rejected.append(RejectedRecord(position, f"{outcome.url}: {outcome.error}",
                                               raw={"feed": outcome.url, "error": str(outcome.error),
                                                    "kind": type(outcome.error).__name__}))
        if len(errors) == len(outcomes) and (errors or waiting):
            self._raise_for_all(errors, list(waiting.values()))
        return FetchResult(posts=tuple(posts), cursor=write_cursor(states), rejected=tuple(rejected))

    def whoami(self) -> Identity:
        """Read every feed once: the feeds' titles, or a :class:`ConnectorError` naming each one that fails."""
        now = datetime.now(UTC)
        filters = self.filters
        outcomes = self._each_feed(
            self.config.feeds, lambda http, url: self._poll_feed(http, url, FeedState(), filters, now)
        )
        failures = [f"{o.url}: {o.error}" for o in outcomes if o.error is not None]
        if failures:
            raise ConnectorError(f"{len(failures)} of {len(outcomes)} feeds cannot be read: " + "; ".join(failures))
        titles = ", ".join(o.title or o.url for o in outcomes)
        return Identity(account_ids=(), handles=(), display_name=titles[:200])

    def _each_feed(self, urls: Sequence[str], work: Callable[[httpx.Client, str], T]) -> list[T]:
        """``work(http, url)`` for every url, a few at a time, in the order of ``urls``."""
        if not urls:
            return []
        with ExitStack() as stack:
            http = self.http or stack.enter_context(httpx.Client(timeout=DEFAULT_TIMEOUT))
            if len(urls) == 1:
                return [work(http, urls[0])]
            pool = stack.enter_context(ThreadPoolExecutor(min(CONCURRENT_FEEDS, len(urls)),
                                                          thread_name_prefix="rss-feed"))
            return list(pool.map(lambda url: work(http, url), urls))

    @staticmethod
    def _poll_feed(
        http: httpx.Client, url: str, state: FeedState, filters: EntryFilter, now: datetime
    ) -> _FeedOutcome:
        """One feed, every failure caught: the others go on whatever this one does."""
        try:
            response = get_feed(http, url, state.etag, state.last_modified, now)
            if response.not_modified:
                return _FeedOutcome(url, state.succeeded(response.etag, response.last_modified))
            parsed, info, notes = _parse(url, response)
            read = read_entries(parsed, info, state, filters, now)
        except RateLimited as exc:
            return _FeedOutcome(url, state.failed(str(exc), exc.retry_at), error=exc)
        except ConnectorError as exc:
            return _FeedOutcome(url, state.failed(str(exc)), error=exc)
        except Exception as exc:  # a feed or an answer nobody foresaw: that feed fails, the others go on
            error = ConnectorError(f"unexpected error reading the feed: {type(exc).__name__}: {exc}"[:500])
            return _FeedOutcome(url, state.failed(str(error)), error=error)
        return _FeedOutcome(url, read.state.succeeded(response.etag, response.last_modified), read.posts,
                            (*notes, *read.rejected), title=info.title)

    @staticmethod
    def _raise_for_all(errors: Sequence[ConnectorError], waiting: Sequence[datetime]) -> None:
        """No feed could be read: fail the poll with the error that says why."""
        summary = "; ".join(str(e) for e in errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        limited = [e.retry_at for e in errors if isinstance(e, RateLimited)] + list(waiting)
        if limited and len(limited) == len(errors) + len(waiting):
            soonest = min(limited)
            raise RateLimited(f"every feed asks us to wait; the first may be asked again at "
                              f"{soonest:%Y-%m-%d %H:%M} UTC" + (f" ({summary})" if summary else ""), soonest)
        if any(isinstance(e, Transient) for e in errors):
            raise Transient(f"no feed could be read: {summary}")
        raise ConnectorError(f"no feed could be read: {summary}")


def _parse(url: str, response: FeedResponse) -> tuple[list[Any], FeedInfo, list[RejectedRecord]]:
    """The entries of a feed body, what the feed says about itself, and a note when it is not well-formed."""
    headers = {"content-location": response.url}
    if response.content_type:
        headers["content-type"] = response.content_type
    if response.content_language:
        headers["content-language"] = response.content_language
    # A stream, never bytes or a string: given those, feedparser would take one that names a file or URL as a
    # place to read the feed from.
    try:
        # No sanitizing nor resolving of links inside the HTML: all markup is dropped for plain text anyway
        # (entries.plain_text, which drops script and style content too), and skipping both parses twice as fast.
        parsed = feedparser.parse(io.BytesIO(_defuse_charrefs(response.body)), response_headers=headers,
                                  sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # feedparser's lenient parser raises on some hostile input
        raise ConnectorError(f"the feed cannot be parsed ({type(exc).__name__}: {_describe(exc)})") from None
    entries = list(parsed.get("entries") or [])
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not parsed.get("version") and not entries:
        if "html" in response.content_type.lower():
            raise ConnectorError("the address serves a web page, not an RSS or Atom feed: use the feed's own address")
        reason = f" ({_describe(problem)})" if problem else ""
        raise ConnectorError(f"the address does not serve an RSS or Atom feed{reason}")
    notes = []
    harmless = feedparser.CharacterEncodingOverride | feedparser.NonXMLContentType  # read right all the same
    if problem is not None and not isinstance(problem, harmless):
        notes.append(RejectedRecord(0, f"{url}: the feed is not well-formed ({_describe(problem)}); the entries "
                                       "that could be read were read", raw={"feed": url}))
    return entries, feed_info(url, parsed.get("feed") or {}), notes


def _defuse_charrefs(body: bytes) -> bytes:
    """``body`` with character references to surrogates or past U+10FFFF made U+FFFD: feedparser's lenient
    parser raises on them (chr() or UTF-8 encoding fails), which would lose the whole feed for one entry."""
    if b"&#" not in body:
        return body

    def fix(match: re.Match[bytes]) -> bytes:
        digits = match[1] or match[2]
        if len(digits.lstrip(b"0")) > 8:
            return b"&#xFFFD;"
        number = int(digits, 16) if match[1] else int(digits)
        return b"&#xFFFD;" if 0xD800 <= number <= 0xDFFF or number > 0x10FFFF else match[0]

    return _CHARREF.sub(fix, body)


def _describe(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
