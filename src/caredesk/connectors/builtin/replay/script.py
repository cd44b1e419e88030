"""The replay script: a JSONL file of posts, each scheduled at an offset in seconds from the show's start.

One object per line::

    {"id": "nimbus-001", "brand": "nimbus", "offset_s": 0.0,
     "author": {"id": "u2001", "handle": "mariaelena_sf", "name": "María Elena Ruiz", "followers": 812,
                "verified": false},
     "text": "...", "in_reply_to": null, "conversation": "nimbus-001", "direct": false, "lang": "en"}

A script is a program rather than customer data, so it is checked strictly and a single bad line refuses the
whole file: a partly played script would show threads whose first posts are missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from caredesk.connectors.base import ConnectorError, NormalizedAuthor, unstorable

BUNDLED_SCRIPT = "demo_posts.jsonl"

# Later loops append "-L<n>" to every id, so script ids leave room under the 200-character id columns.
MAX_ID_LENGTH = 180


@dataclass(frozen=True, slots=True)
class ScriptPost:
    """One scheduled post. ``in_reply_to`` is "" for a post that starts a thread."""

    external_id: str
    brand: str
    offset_s: float
    author: NormalizedAuthor
    text: str
    in_reply_to: str
    conversation: str
    is_direct: bool
    language: str
    line: int


@dataclass(frozen=True, slots=True)
class Script:
    """Posts ordered by offset; posts with the same offset keep their order in the file."""

    posts: tuple[ScriptPost, ...]

    @property
    def brands(self) -> frozenset[str]:
        return frozenset(p.brand for p in self.posts)

    def for_brand(self, brand: str | None) -> tuple[ScriptPost, ...]:
        if brand is None:
            return self.posts
        return tuple(p for p in self.posts if p.brand == brand)


def load_script(path: str | Path | None = None) -> Script:
    """Read and check the script at ``path``, or the bundled demo script when ``path`` is None."""
    try:
        if path is None:
            with (
                resources.files("caredesk.connectors.builtin.replay")
                .joinpath(BUNDLED_SCRIPT)
                .open("r", encoding="utf-8") as fh
            ):
                return parse_script(fh)
        with Path(path).open("r", encoding="utf-8") as fh:
            return parse_script(fh)
    except OSError as exc:
        raise ConnectorError(f"cannot read replay script {path or BUNDLED_SCRIPT}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConnectorError(f"replay script {path or BUNDLED_SCRIPT} is not UTF-8") from exc


def parse_script(lines: Iterable[str]) -> Script:
    """Check every line and return the script. Raises :class:`ConnectorError` naming the first bad line."""
    posts: list[ScriptPost] = []
    seen: dict[str, ScriptPost] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConnectorError(f"replay script line {number}: invalid JSON ({exc.msg})") from exc
        post = _script_post(record, number, seen)
        seen[post.external_id] = post
        posts.append(post)
    if not posts:
        raise ConnectorError("replay script has no posts")
    # sorted() is stable, so posts sharing an offset keep their order in the file.
    return Script(posts=tuple(sorted(posts, key=lambda p: p.offset_s)))


def _script_post(record: Any, line: int, seen: Mapping[str, ScriptPost]) -> ScriptPost:
    def fail(reason: str) -> ConnectorError:
        return ConnectorError(f"replay script line {line}: {reason}")

    if not isinstance(record, dict):
        raise fail("expected a JSON object")

    def string(key: str, source: Mapping[str, Any] = record, *, required: bool = True) -> str:
        value = source.get(key)
        if value is None or value == "":
            if required:
                raise fail(f"missing {key!r}")
            return ""
        if not isinstance(value, str):
            raise fail(f"{key!r} must be a string")
        problem = unstorable(value)
        if problem:
            raise fail(f"{key!r} contains {problem}")
        return value

    external_id = string("id")
    if len(external_id) > MAX_ID_LENGTH:
        raise fail(f"id longer than {MAX_ID_LENGTH} characters")
    if external_id in seen:
        raise fail(f"duplicate id {external_id!r}")
    brand = string("brand")

    offset = record.get("offset_s")
    if (
        isinstance(offset, bool)
        or not isinstance(offset, int | float)
        or not math.isfinite(offset)
        or offset < 0
    ):
        raise fail("'offset_s' must be a number of seconds >= 0")

    author_record = record.get("author")
    if not isinstance(author_record, dict):
        raise fail("'author' must be an object")
    followers = author_record.get("followers", 0)
    if isinstance(followers, bool) or not isinstance(followers, int) or followers < 0:
        raise fail("'author.followers' must be a whole number >= 0")
    verified = author_record.get("verified", False)
    if not isinstance(verified, bool):
        raise fail("'author.verified' must be true or false")
    author = NormalizedAuthor(
        external_id=string("id", author_record),
        handle=string("handle", author_record),
        name=string("name", author_record, required=False),
        followers=followers,
        verified=verified,
    )

    in_reply_to = string("in_reply_to", required=False)
    parent = seen.get(in_reply_to) if in_reply_to else None
    if in_reply_to:
        # Threads must be complete within the script and within one brand, or a brand filter or a later loop
        # would produce replies to posts that caredesk never saw.
        if parent is None:
            raise fail(f"'in_reply_to' {in_reply_to!r} is not an earlier post of the script")
        if parent.brand != brand:
            raise fail(f"'in_reply_to' {in_reply_to!r} belongs to brand {parent.brand!r}")
        if parent.offset_s > offset:
            raise fail(f"'in_reply_to' {in_reply_to!r} is scheduled after its reply")

    conversation = string("conversation", required=False)
    if not conversation:
        conversation = parent.conversation if parent is not None else external_id
    elif conversation != external_id:
        root = seen.get(conversation)
        if root is None or root.brand != brand:
            raise fail(
                f"'conversation' {conversation!r} is not an earlier post of the script's brand {brand!r}"
            )

    direct = record.get("direct", False)
    if not isinstance(direct, bool):
        raise fail("'direct' must be true or false")

    return ScriptPost(
        external_id=external_id,
        brand=brand,
        offset_s=float(offset),
        author=author,
        text=string("text"),
        in_reply_to=in_reply_to,
        conversation=conversation,
        is_direct=direct,
        language=string("lang", required=False),
        line=line,
    )

