"""Mastodon entities (Status, Notification, Conversation, Account) → caredesk's normalized posts. Pure functions.

Everything in a status is written by whoever posted it, on any server of the federation: ``content`` is HTML that
this module reduces to plain text (tags dropped, line breaks kept, entities unescaped, script and style bodies
dropped), and every field is checked for its type before use, so a hostile or broken record becomes a
:class:`~caredesk.connectors.base.MalformedPayload` with a reason instead of a crash or a half-filled post.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from caredesk.connectors.base import MalformedPayload, NormalizedAuthor, NormalizedPost, unstorable

# Elements whose text is never shown by a browser, so it is not part of what the author "said".
_HIDDEN = frozenset({"script", "style", "template", "noscript", "head", "title"})
_BLOCKS = frozenset({"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden_depth += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self._paragraph_break()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag in _BLOCKS:
            self._paragraph_break()

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.parts.append(data)

    def _paragraph_break(self) -> None:
        if self.parts and not "".join(self.parts[-2:]).endswith("\n\n"):
            self.parts.append("\n\n")


def html_to_text(content: str) -> str:
    """The text a reader sees in a status's HTML ``content``: paragraphs become blank-line separated, ``<br>``
    a line break, entities are unescaped; markup and the bodies of script/style elements are dropped."""
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    text = "".join(parser.parts).replace("\r\n", "\n").replace("\xa0", " ")
    text = _TRAILING_SPACE.sub("\n", text)
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def id_key(external_id: str) -> tuple[int, str]:
    """Sort key for Mastodon ids: numeric strings (snowflakes) by value, others (some forks) by length and text."""
    return (int(external_id), "") if external_id.isdigit() else (len(external_id), external_id)


def newest_id(*ids: str | None) -> str | None:
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedPayload(f"{what} is not a timestamp: {value!r:.80}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload(f"{what} is not an ISO 8601 timestamp: {value!r:.80}") from None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)  # Mastodon always writes Z; a bare time from a fork is read as UTC
    return parsed.astimezone(UTC)


def _str(record: Mapping[str, Any], name: str, what: str, *, required: bool = False) -> str:
    value = record.get(name)
    if value is None:
        if required:
            raise MalformedPayload(f"{what} has no {name}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedPayload(f"{what} has a {name} that is not a string: {value!r:.80}")
    text = str(value)
    if required and not text:
        raise MalformedPayload(f"{what} has an empty {name}")
    problem = unstorable(text)
    if problem:
        raise MalformedPayload(f"{what} has {problem} in {name}")
    return text


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedPayload(f"{what} is not a JSON object: {value!r:.80}")
    return value


def author_from_account(account: Any) -> NormalizedAuthor:
    account = _mapping(account, "account")
    followers = account.get("followers_count", 0)
    if isinstance(followers, bool) or not isinstance(followers, int) or followers < 0:
        followers = 0  # a hidden or nonsensical count is not a reason to lose the post
    return NormalizedAuthor(
        external_id=_str(account, "id", "account", required=True),
        handle=_str(account, "acct", "account", required=True),
        name=_str(account, "display_name", "account"),
        followers=followers,
    )


def mentions_of(status: Mapping[str, Any]) -> set[str]:
    """The account ids a status mentions."""
    mentions = status.get("mentions")
    if not isinstance(mentions, list):
        return set()
    return {str(m["id"]) for m in mentions if isinstance(m, Mapping) and isinstance(m.get("id"), str | int)}


def post_from_status(status: Any, *, conversation_id: str = "") -> NormalizedPost:
    """A Status entity as a post. A reblog (boost) is the boosted status: that is what someone wrote."""
    status = _mapping(status, "status")
    if isinstance(status.get("reblog"), Mapping):
        status = status["reblog"]
    status_id = _str(status, "id", "status", required=True)
    what = f"status {status_id[:40]}"
    content = status.get("content", "")
    if not isinstance(content, str):
        raise MalformedPayload(f"{what} has a content that is not a string")
    spoiler = _str(status, "spoiler_text", what)
    text = html_to_text(content)
    if spoiler:
        # The content warning is part of what the author wrote (and what readers see first).
        text = f"{spoiler}\n\n{text}" if text else spoiler
    problem = unstorable(text)
    if problem:
        raise MalformedPayload(f"{what} has {problem} in its content")
    visibility = _str(status, "visibility", what)
    return NormalizedPost(
        external_id=status_id,
        author=author_from_account(status.get("account")),
        text=text,
        created_at=parse_time(status.get("created_at"), f"{what} created_at"),
        in_reply_to_external_id=_str(status, "in_reply_to_id", what),
        # The Status entity has no conversation id; Pleroma-family servers send one, DMs get theirs from a
        # Conversation entity.
        conversation_external_id=conversation_id or _str(status, "conversation_id", what),
        is_direct=visibility == "direct",
        language=_str(status, "language", what),
        url=_str(status, "url", what) or _str(status, "uri", what),
        raw=status,
    )


def is_edited(status: Mapping[str, Any]) -> bool:
    return bool(status.get("edited_at"))


def status_of_notification(notification: Any) -> tuple[str, str, Mapping[str, Any] | None]:
    """A notification's (id, type, status); the status is None for notifications that carry none."""
    notification = _mapping(notification, "notification")
    notification_id = _str(notification, "id", "notification", required=True)
    kind = _str(notification, "type", f"notification {notification_id[:40]}")
    status = notification.get("status")
    return notification_id, kind, _mapping(status, f"notification {notification_id[:40]} status") if status else None


def parse_link_header(value: str) -> dict[str, str]:
    """``Link: <url>; rel="next", <url>; rel="prev"`` → {"next": url, "prev": url}."""
    links: dict[str, str] = {}
    for part in value.split(","):
        match = re.match(r'\s*<([^>]*)>\s*;\s*rel="?([a-z]+)"?', part)
        if match:
            links[match.group(2)] = match.group(1)
    return links
