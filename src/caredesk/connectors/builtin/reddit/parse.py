"""Reddit "things" (``{"kind": "t1"|"t3"|"t4", "data": {...}}`` of a Listing) → caredesk's normalized posts.

Pure functions; every field is written by whoever posted (or by Reddit's moderators), so each is checked before
use and a broken thing becomes a :class:`MalformedPayload`. External ids are fullnames (``t3_abc``), the ids
Reddit's ``thing_id``/``parent_id`` use, so a reply to a comment threads onto it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from caredesk.connectors.base import MalformedPayload, NormalizedAuthor, NormalizedPost, unstorable
from caredesk.connectors.builtin.reddit.api import aware_utc
from caredesk.connectors.listening import KeywordMatcher

SITE = "https://www.reddit.com"
FULLNAME_RE = re.compile(r"t[1-6]_[0-9a-z]{1,16}")
# What Reddit leaves of a post or comment its author deleted or a moderator removed.
GONE = frozenset({"[deleted]", "[removed]"})
_POST_IN_PATH = re.compile(r"/comments/([0-9a-z]{1,16})/")


def _str(data: Mapping[str, Any], name: str, what: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"{what} has a {name} that is not a string: {value!r:.80}")
    problem = unstorable(value)
    if problem:
        raise MalformedPayload(f"{what} has {problem} in {name}")
    return value


def fullname(thing: Any) -> str:
    """The thing's fullname (``t1_…``), or "" when it has none that looks like one."""
    data = thing.get("data") if isinstance(thing, Mapping) else None
    name = data.get("name") if isinstance(data, Mapping) else None
    return name if isinstance(name, str) and FULLNAME_RE.fullmatch(name) else ""


def created(thing: Any) -> float | None:
    data = thing.get("data") if isinstance(thing, Mapping) else None
    value = data.get("created_utc") if isinstance(data, Mapping) else None
    return float(value) if isinstance(value, int | float) and aware_utc(value) is not None else None


def author_of(data: Mapping[str, Any], name: str, what: str) -> NormalizedAuthor:
    """The author; one who deleted their account (``[deleted]``, no ``author_fullname``) becomes an anonymous
    author of this one post, so two such posts are not taken for one customer. A message a subreddit's
    moderators sent has no author, only the subreddit."""
    handle = _str(data, "author", what)
    author_id = _str(data, "author_fullname", what)
    if handle and handle not in GONE and author_id:
        return NormalizedAuthor(external_id=author_id, handle=handle, name=handle)
    subreddit = _str(data, "subreddit", what)
    if not handle and subreddit:
        return NormalizedAuthor(external_id=f"r/{subreddit}", handle=f"r/{subreddit}", name=f"r/{subreddit}")
    return NormalizedAuthor(external_id=f"[deleted]:{name}", handle="[deleted]")


def _link(path: str) -> str:
    return SITE + path if path.startswith("/") else ""


def post_from_thing(thing: Any, matcher: KeywordMatcher, *, summoned: bool) -> NormalizedPost | None:
    """The post a listing child stands for; None when nothing is left of it (deleted or removed)."""
    if not isinstance(thing, Mapping) or not isinstance(thing.get("data"), Mapping):
        raise MalformedPayload(f"a listing child that is not a thing: {thing!r:.80}")
    kind, data = thing.get("kind"), thing["data"]
    name = fullname(thing)
    if not name:
        raise MalformedPayload(f"a {str(kind)[:4]} without a fullname: {data.get('name')!r:.40}")
    if kind not in ("t1", "t3", "t4") or not name.startswith(f"{kind}_"):
        raise MalformedPayload(f"{name}: a {str(kind)[:4]} is neither a post, a comment nor a message")
    what = f"{name}"
    when = aware_utc(data.get("created_utc"))
    if when is None:
        raise MalformedPayload(f"{what} has no created_utc time: {data.get('created_utc')!r:.40}")
    in_reply_to = _str(data, "parent_id", what)
    if kind == "t3":
        title = _str(data, "title", what)
        body = _str(data, "selftext", what)
        text = f"{title}\n\n{body}" if body and body not in GONE else title
        gone = not title
        conversation, url = name, _link(_str(data, "permalink", what))
        in_reply_to = ""
    elif kind == "t1":
        text = _str(data, "body", what)
        gone = text in GONE or not text
        # A comment in a listing names its post (link_id); one in the inbox only has the link to its context.
        path = _str(data, "permalink", what) or _str(data, "context", what)
        post = _POST_IN_PATH.search(path)
        conversation = _str(data, "link_id", what) or (f"t3_{post.group(1)}" if post else "")
        url = _link(path)
    else:
        body = _str(data, "body", what)
        subject = _str(data, "subject", what)
        # The first message of a conversation says what it is about in its subject; replies repeat "re: …".
        text = f"{subject}\n\n{body}" if subject and not in_reply_to else body
        gone = body in GONE or not body
        conversation = _str(data, "first_message_name", what) or name
        url = f"{SITE}/message/messages/{name[3:]}"
    if gone:
        return None
    return NormalizedPost(
        external_id=name,
        author=author_of(data, name, what),
        text=text,
        created_at=when,
        in_reply_to_external_id=in_reply_to if FULLNAME_RE.fullmatch(in_reply_to) else "",
        conversation_external_id=conversation,
        is_direct=kind == "t4",
        url=url,
        raw=dict(data),
        summoned=summoned,
        matched_keywords=matcher.match(text),
    )
