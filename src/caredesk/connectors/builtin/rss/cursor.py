"""The RSS cursor: per feed, the validators for the next conditional GET, the entries already delivered, and
when a rate-limited feed may be asked again.

Shape, as JSON: ``{"v": 1, "feeds": {<feed url>: {"etag", "last_modified", "seen": [...], "retry_at",
"error", "failures"}}}``. ``seen`` holds short hashes of the ids (and links) of the entries delivered or rejected,
oldest first, at most :data:`SEEN_PER_FEED`: a feed shows its last few dozen entries again and again, in any
order, and an entry whose id is seen is not delivered again, nor one whose link is (a CMS that re-publishes an
article with a new id). The database's own duplicate check on external ids stands behind it.

A feed state that cannot be read (a cursor edited by hand, an older shape) starts afresh rather than failing
the installation: the worst outcome is one conditional GET without validators.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from caredesk.connectors.builtin.rss.fetching import validator

SEEN_PER_FEED = 1000
CURSOR_VERSION = 1


def seen_key(value: str) -> str:
    """The short form an entry id or link takes in ``seen``: 64 bits, so a thousand per feed never collide in
    practice, in a tenth of the space of the ids themselves."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class FeedState:
    etag: str = ""
    last_modified: str = ""
    seen: tuple[str, ...] = ()
    retry_at: datetime | None = None
    error: str = ""
    failures: int = 0
    _seen_set: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_seen_set", frozenset(self.seen))

    def has_seen(self, keys: Iterable[str]) -> bool:
        return any(key in self._seen_set for key in keys)

    def with_seen(self, keys: Iterable[str]) -> FeedState:
        added = [k for k in dict.fromkeys(keys) if k not in self._seen_set]
        if not added:
            return self
        return replace(self, seen=(*self.seen, *added)[-SEEN_PER_FEED:])

    def failed(self, error: str, retry_at: datetime | None = None) -> FeedState:
        return replace(self, error=error[:500], failures=self.failures + 1, retry_at=retry_at)

    def succeeded(self, etag: str, last_modified: str) -> FeedState:
        return replace(self, etag=etag, last_modified=last_modified, error="", failures=0, retry_at=None)

    @classmethod
    def from_mapping(cls, raw: Any) -> FeedState:
        if not isinstance(raw, Mapping):
            return cls()
        seen = raw.get("seen")
        retry_at = None
        if isinstance(raw.get("retry_at"), str):
            try:
                retry_at = datetime.fromisoformat(raw["retry_at"])
            except ValueError:
                retry_at = None
            if retry_at is not None and retry_at.utcoffset() is None:
                retry_at = None
        failures = raw.get("failures")
        return cls(
            etag=validator(raw.get("etag")) if isinstance(raw.get("etag"), str) else "",
            last_modified=validator(raw.get("last_modified")) if isinstance(raw.get("last_modified"), str) else "",
            seen=tuple(s for s in seen if isinstance(s, str))[-SEEN_PER_FEED:] if isinstance(seen, list) else (),
            retry_at=retry_at.astimezone(UTC) if retry_at else None,
            error=raw["error"][:500] if isinstance(raw.get("error"), str) else "",
            failures=failures if isinstance(failures, int) and not isinstance(failures, bool) and failures > 0 else 0,
        )

    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seen": list(self.seen)}
        if self.etag:
            out["etag"] = self.etag
        if self.last_modified:
            out["last_modified"] = self.last_modified
        if self.retry_at:
            out["retry_at"] = self.retry_at.isoformat()
        if self.error:
            out["error"] = self.error
            out["failures"] = self.failures
        return out


def read_cursor(cursor: Mapping[str, Any]) -> dict[str, FeedState]:
    feeds = cursor.get("feeds") if isinstance(cursor, Mapping) else None
    if not isinstance(feeds, Mapping):
        return {}
    return {url: FeedState.from_mapping(raw) for url, raw in feeds.items() if isinstance(url, str)}


def write_cursor(states: Mapping[str, FeedState]) -> dict[str, Any]:
    return {"v": CURSOR_VERSION, "feeds": {url: state.to_mapping() for url, state in states.items()}}
