"""A parsed feed's entries → the posts that mention the brand.

Everything in a feed is attacker-controlled: titles and summaries become plain text, links are kept only when
they are web links, dates outside any plausible range become the poll's time, and a matching entry that the
database could not store (a NUL, a lone surrogate) is rejected with its feed and id, never stored half-way.
"""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from caredesk.connectors.base import NormalizedAuthor, NormalizedPost, RejectedRecord, unstorable
from caredesk.connectors.builtin.rss.cursor import FeedState, seen_key
from caredesk.connectors.builtin.rss.text import bounded, plain_text
from caredesk.connectors.listening import KeywordMatcher

MAX_TEXT_CHARS = 2000
# How much of an entry is searched for the keywords: an article's full content can be long, and a mention in
# its fiftieth paragraph is not what an agent is looking for.
MAX_MATCHED_CHARS = 20_000
# Entries past this many in one feed are not read: no real feed shows that many, a hostile one may.
MAX_ENTRIES_PER_FEED = 1000
SNIPPET_CHARS = 300
_MAX_URL = 500  # Post.url
_MAX_ID = 200  # external ids and author fields
_EARLIEST = datetime(1991, 1, 1, tzinfo=UTC)  # before the web, a date is a mistake
_FUTURE_SLACK = timedelta(days=1)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")
_SUMMONED = "summoned" in {f.name for f in dataclasses.fields(NormalizedPost)}


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """The feed an entry comes from: its configured address and what the feed says about itself."""

    url: str
    title: str
    site: str  # the site's home page where the feed names a web link, else the feed's address
    language: str

    @property
    def author_id(self) -> str:
        # The configured address, not the feed's own claim of a site link: a hostile feed must not pass itself
        # off as another site's author.
        if len(self.url) <= _MAX_ID:
            return self.url
        return "rss:" + hashlib.sha256(self.url.encode()).hexdigest()

    @property
    def host(self) -> str:
        return (urlsplit(self.site).hostname or urlsplit(self.url).hostname or self.url)[:_MAX_ID]


@dataclass(frozen=True, slots=True)
class EntryFilter:
    matcher: KeywordMatcher
    languages: tuple[str, ...] = ()

    def language_ok(self, language: str) -> bool:
        """An entry passes when no filter is set, when it declares no language, or when its language (or the
        language its tag belongs to: "en-gb" is "en") is one asked for."""
        if not self.languages or not language:
            return True
        return any(language == wanted or language.startswith(wanted + "-") for wanted in self.languages)


@dataclass(frozen=True, slots=True)
class EntriesOutcome:
    posts: tuple[NormalizedPost, ...]
    rejected: tuple[RejectedRecord, ...]
    state: FeedState


def feed_info(url: str, feed: Mapping[str, Any]) -> FeedInfo:
    site = _web_link(_field(feed, "link"))
    return FeedInfo(
        url=url,
        title=bounded(plain_text(_str(_field(feed, "title"))), _MAX_ID),
        site=site or url,
        language=language_tag(_str(_field(feed, "language"))),
    )


def language_tag(value: str) -> str:
    """A BCP 47-looking tag, lower-cased ("en-us"), or "" for anything else."""
    value = value.strip().lower().replace("_", "-")
    return value if len(value) <= 12 and _LANGUAGE.match(value) else ""


def entry_id(entry: Mapping[str, Any]) -> str:
    """The entry's own id (RSS guid, Atom id, RSS 1.0 rdf:about), else its link, else one derived from its link
    and title, which stays the same as long as they do."""
    for key in ("id", "link"):
        value = _str(_field(entry, key)).strip()
        if value:
            return value
    derived = _str(_field(entry, "link")) + "\n" + _str(_field(entry, "title"))
    return "derived:" + hashlib.sha256(derived.encode("utf-8", "surrogatepass")).hexdigest()


def external_id(feed_url: str, entry: str) -> str:
    """Stable per feed and entry; hashed with the feed's address so one feed cannot claim another's entries."""
    digest = hashlib.sha256(f"{feed_url}\n{entry}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"rss:{digest[:40]}"


def read_entries(
    entries: Sequence[Mapping[str, Any]], info: FeedInfo, state: FeedState, filters: EntryFilter, now: datetime
) -> EntriesOutcome:
    """The posts among ``entries`` that mention the brand and were not delivered before, the rejections, and
    the feed state with both remembered."""
    posts: list[NormalizedPost] = []
    rejected: list[RejectedRecord] = []
    remembered: list[str] = []
    delivered_here: set[str] = set()
    for position, entry in enumerate(entries[:MAX_ENTRIES_PER_FEED], start=1):
        eid = entry_id(entry)
        link = _web_link(_field(entry, "link"))
        keys = [seen_key(eid)] + ([seen_key(link)] if link and link != eid else [])
        if state.has_seen(keys) or delivered_here.intersection(keys):
            continue
        try:
            post = _post(entry, eid, link, info, filters, now)
        except _Unusable as exc:
            rejected.append(RejectedRecord(position, f"{info.url}: entry {_printable(eid[:120])!r}: {exc}",
                                           raw={"feed": info.url, "entry_id": _printable(eid[:500])}))
            # Remembered like a delivered entry: the same broken entry is reported once, not at every poll.
            remembered.extend(keys)
            delivered_here.update(keys)
            continue
        if post is not None:
            posts.append(post)
            remembered.extend(keys)
            delivered_here.update(keys)
    if len(entries) > MAX_ENTRIES_PER_FEED:
        rejected.append(RejectedRecord(
            MAX_ENTRIES_PER_FEED + 1,
            f"{info.url}: the feed has {len(entries)} entries; only the first {MAX_ENTRIES_PER_FEED} were read",
            raw={"feed": info.url},
        ))
    return EntriesOutcome(tuple(posts), tuple(rejected), state.with_seen(remembered))


class _Unusable(Exception):
    pass


def _post(
    entry: Mapping[str, Any], eid: str, link: str, info: FeedInfo, filters: EntryFilter, now: datetime
) -> NormalizedPost | None:
    """The post for ``entry``, or None when it does not concern the brand (or is in another language)."""
    language = _entry_language(entry) or info.language
    if not filters.language_ok(language):
        return None
    title = plain_text(_str(_field(entry, "title")))
    summary = plain_text(_str(_field(entry, "summary")))
    content = " ".join(plain_text(_str(c.get("value"))) for c in _dicts(_field(entry, "content")))
    searched = " \n ".join(part for part in (title, summary, content[:MAX_MATCHED_CHARS]) if part)
    keywords = filters.matcher.match(searched)
    if not keywords:
        return None
    text = " — ".join(part for part in (title, bounded(summary, MAX_TEXT_CHARS)) if part)
    if not filters.matcher.match(text):
        # The mention is only in the article's body: show the words around it, or the agent cannot see why.
        text = f"{text} … {_snippet(content, keywords)}" if text else _snippet(content, keywords)
    text = bounded(text, MAX_TEXT_CHARS)
    author_name = bounded(plain_text(_str(_field(entry, "author"))), _MAX_ID) or info.title
    author = NormalizedAuthor(external_id=info.author_id, handle=info.host, name=author_name)
    raw = {"feed": info.url, "entry_id": eid[:500], "keywords": list(keywords)}
    for label, value in (("the title or summary", text), ("the author", author_name), ("the id", eid),
                         ("the feed's title or address", info.title + info.host)):
        problem = unstorable(value)
        if problem:
            raise _Unusable(f"{label} contains {problem}")
    extra: dict[str, Any] = {"summoned": False} if _SUMMONED else {}
    return NormalizedPost(
        external_id=external_id(info.url, eid),
        author=author,
        text=text,
        created_at=_created_at(entry, now),
        language=language,
        url=link if len(link) <= _MAX_URL else "",
        raw=raw,
        **extra,
    )


def _snippet(content: str, keywords: Iterable[str]) -> str:
    folded = content.casefold()
    starts = [i for i in (folded.find(k.casefold()) for k in keywords) if i >= 0]
    at = min(starts) if starts else 0
    begin = max(0, at - SNIPPET_CHARS // 2)
    piece = content[begin: begin + SNIPPET_CHARS].strip()
    return ("…" if begin else "") + piece + ("…" if begin + SNIPPET_CHARS < len(content) else "")


def _created_at(entry: Mapping[str, Any], now: datetime) -> datetime:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = _field(entry, key)
        if isinstance(parsed, time.struct_time):
            try:
                when = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
            except (OverflowError, OSError, ValueError):
                continue
            if _EARLIEST <= when <= now + _FUTURE_SLACK:
                return when
    return now


def _entry_language(entry: Mapping[str, Any]) -> str:
    # feedparser keeps an Atom entry's xml:lang on each of its text constructs, not on the entry.
    for detail in (_field(entry, "title_detail"), _field(entry, "summary_detail"), *_dicts(_field(entry, "content"))):
        if isinstance(detail, Mapping) and isinstance(detail.get("language"), str):
            tag = language_tag(detail["language"])
            if tag:
                return tag
    return language_tag(_str(_field(entry, "language")))


def _web_link(value: Any) -> str:
    """``value`` when it is an http(s) link (a javascript: link in the inbox would run on click), else ""."""
    link = _str(value).strip()
    if not link.lower().startswith(("https://", "http://")) or any(c.isspace() for c in link):
        return ""
    return link if unstorable(link) is None else ""


def _printable(value: str) -> str:
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _field(record: Mapping[str, Any], key: str) -> Any:
    """``record[key]`` or None, read as a plain dict: feedparser's own lookup of a missing ``updated_parsed``
    falls back to ``published_parsed`` with a DeprecationWarning, and we ask for each date by its name."""
    return dict.get(record, key) if isinstance(record, dict) else record.get(key)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
