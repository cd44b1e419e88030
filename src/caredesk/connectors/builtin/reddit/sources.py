"""What a Reddit installation polls (its *sources*: the inbox, the mentions, each subreddit's keyword search),
and each source's place in the cursor.

Reddit lists newest first and pages backwards with ``after``. A source remembers the newest thing it has seen
(``since``: its ``created_utc``, and ``seen``: the fullnames of that same second, so none is taken twice or
missed). When a catch-up is cut short (this poll's requests are spent), the source keeps its floor and the
``after`` it stopped at, with the newest it found meanwhile (``pending``); the next turn goes on below ``after``
until it reaches the floor, and only then moves its floor up. Nothing between is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from caredesk.connectors.builtin.reddit.config import RedditConfig
from caredesk.connectors.builtin.reddit.parse import FULLNAME_RE

# Reddit's search refuses queries longer than 512 characters: longer keyword lists are split into several.
MAX_QUERY = 500
MAX_SEEN = 50
# Reddit caches listings for about 30 seconds: a source read more often than this sees the same page again.
FRESH_SECONDS = 30.0
# A source Reddit refused to list (a private, banned or missing subreddit, a scope the app lacks) is tried again
# after this long, so one bad subreddit neither stops the others nor spends a request every poll.
REFUSED_SECONDS = 900.0


@dataclass(frozen=True, slots=True)
class Source:
    key: str  # its name in the cursor: "inbox", "mentions", "r/AskReddit", "r/AskReddit#2"
    path: str
    params: Mapping[str, str]
    summoned: bool  # inbox and mentions address the brand; subreddit posts only match a keyword


def _queries(keywords: tuple[str, ...]) -> list[str]:
    """``"a" OR "b" …`` in pieces Reddit's search takes (quotes in a keyword cannot be escaped: dropped)."""
    queries: list[str] = []
    current = ""
    for keyword in keywords:
        term = '"' + keyword.replace('"', " ").strip() + '"'
        candidate = f"{current} OR {term}" if current else term
        if current and len(candidate) > MAX_QUERY:
            queries.append(current)
            candidate = term
        current = candidate[:MAX_QUERY]
    if current:
        queries.append(current)
    return queries


def sources(config: RedditConfig) -> list[Source]:
    found = []
    if config.inbox:
        found.append(Source("inbox", "/message/inbox", {}, summoned=True))
    if config.mentions:
        found.append(Source("mentions", "/message/mentions", {}, summoned=True))
    for subreddit in config.subreddits:
        if config.subreddit_listing == "new":
            found.append(Source(f"r/{subreddit}", f"/r/{subreddit}/new", {}, summoned=False))
            continue
        for n, query in enumerate(_queries(config.keywords), start=1):
            key = f"r/{subreddit}" if n == 1 else f"r/{subreddit}#{n}"
            found.append(Source(key, f"/r/{subreddit}/search",
                                {"q": query, "restrict_sr": "1", "sort": "new", "t": "all", "type": "link"},
                                summoned=False))
    return found


@dataclass(slots=True)
class Mark:
    """The newest thing a source has seen: its ``created_utc`` and the fullnames of that second."""

    since: float
    seen: list[str] = field(default_factory=list)

    def passed(self, name: str, when: float) -> bool:
        """Whether the thing is at or below this mark (seen before)."""
        return when < self.since or (when == self.since and name in self.seen)

    def note(self, name: str, when: float) -> None:
        if when > self.since:
            self.since, self.seen = when, [name]
        elif when == self.since and name not in self.seen:
            self.seen = [*self.seen, name][-MAX_SEEN:]

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "seen": list(self.seen)}

    @classmethod
    def from_json(cls, raw: Any) -> Mark | None:
        if not isinstance(raw, Mapping):
            return None
        since = raw.get("since")
        if isinstance(since, bool) or not isinstance(since, int | float):
            return None
        seen = raw.get("seen")
        names = [s for s in seen if isinstance(s, str) and FULLNAME_RE.fullmatch(s)] if isinstance(seen, list) else []
        return cls(float(since), names[-MAX_SEEN:])


@dataclass(slots=True)
class SourceState:
    """One source's cursor: its floor (None: never read), and, mid catch-up, where it stopped and the newest
    thing it found above the floor."""

    floor: Mark | None = None
    after: str = ""
    pending: Mark | None = None
    read_at: float | None = None  # when its last turn began (unix seconds)
    refused_until: float | None = None  # Reddit refused to list it (a private or banned subreddit): not before

    def fresh(self, now: float) -> bool:
        """Whether it is not to be read now: Reddit refused it a while ago, or reading it again would only see
        Reddit's cached listing (read less than :data:`FRESH_SECONDS` ago, and not in the middle of a
        catch-up)."""
        if self.refused_until is not None and now < self.refused_until:
            return True
        return self.floor is not None and not self.after and self.read_at is not None \
            and 0 <= now - self.read_at < FRESH_SECONDS

    def to_json(self) -> dict[str, Any]:
        if self.floor is None:
            return {"refused_until": self.refused_until} if self.refused_until is not None else {}
        out = self.floor.to_json()
        if self.after:
            out["after"] = self.after
            if self.pending is not None:
                out["pending"] = self.pending.to_json()
        if self.read_at is not None:
            out["read_at"] = self.read_at
        if self.refused_until is not None:
            out["refused_until"] = self.refused_until
        return out

    @classmethod
    def from_json(cls, raw: Any) -> SourceState:
        if not isinstance(raw, Mapping):
            return cls()
        refused_until = _number(raw.get("refused_until"))
        floor = Mark.from_json(raw)
        if floor is None:
            return cls(refused_until=refused_until)
        after = raw.get("after")
        if not isinstance(after, str) or not FULLNAME_RE.fullmatch(after):
            after = ""
        return cls(floor, after, Mark.from_json(raw.get("pending")) if after else None, _number(raw.get("read_at")),
                   refused_until)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
