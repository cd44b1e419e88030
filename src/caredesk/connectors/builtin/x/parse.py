"""X API v2 Tweet and User objects → caredesk's normalized posts. Pure functions; every field is written by
whoever posted, so each is checked before use and a broken record becomes a :class:`MalformedPayload`.

An edited post comes back under a new id with ``edit_history_tweet_ids`` listing every version, oldest first:
:func:`new_or_edit` turns it into a :class:`PostEdited` of the post stored under the first id."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from caredesk.connectors.base import MalformedPayload, NormalizedAuthor, NormalizedPost, PostEdited, unstorable
from caredesk.connectors.listening import KeywordMatcher


def id_key(tweet_id: str) -> int:
    return int(tweet_id) if tweet_id.isdigit() else -1


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedPayload(f"{what} is not a timestamp: {value!r:.80}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedPayload(f"{what} is not an ISO 8601 timestamp: {value!r:.80}") from None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def string(record: Mapping[str, Any], name: str, what: str, *, required: bool = False) -> str:
    """A string field of a record, checked storable; "" when absent (:class:`MalformedPayload` if required)."""
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"{what} has no {name}")
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"{what} has a {name} that is not a string: {value!r:.80}")
    problem = unstorable(value)
    if problem:
        raise MalformedPayload(f"{what} has {problem} in {name}")
    return value


def users_by_id(includes: Any) -> dict[str, Mapping[str, Any]]:
    """``includes.users``: a list of User objects; the Activity API also wraps each in ``{"data": user}``, and a
    ``dm.received`` payload's ``users`` is a map from id to such a wrapper."""
    users = includes.get("users") if isinstance(includes, Mapping) else None
    if isinstance(users, Mapping):
        users = list(users.values())
    if not isinstance(users, list):
        return {}
    found: dict[str, Mapping[str, Any]] = {}
    for entry in users:
        record = entry.get("data") if isinstance(entry, Mapping) and "id" not in entry else entry
        if isinstance(record, Mapping) and isinstance(record.get("id"), str):
            found[str(record["id"])] = record
    return found


def author(user: Mapping[str, Any]) -> NormalizedAuthor:
    metrics = user.get("public_metrics")
    followers = metrics.get("followers_count", 0) if isinstance(metrics, Mapping) else 0
    if isinstance(followers, bool) or not isinstance(followers, int) or followers < 0:
        followers = 0
    verified = user.get("verified")
    return NormalizedAuthor(external_id=string(user, "id", "user", required=True),
                            handle=string(user, "username", "user", required=True), name=string(user, "name", "user"),
                            followers=followers, verified=verified is True)


def replied_to(tweet: Mapping[str, Any]) -> str:
    refs = tweet.get("referenced_tweets")
    if not isinstance(refs, list):
        return ""
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("type") == "replied_to" and isinstance(ref.get("id"), str):
            return str(ref["id"])
    return ""


def mentions_user(tweet: Mapping[str, Any], user_id: str) -> bool:
    """Whether the post addressed ``user_id``: an @mention of it in ``entities``, or a reply to it."""
    if not user_id:
        return False
    if tweet.get("in_reply_to_user_id") == user_id:
        return True
    entities = tweet.get("entities")
    mentions = entities.get("mentions") if isinstance(entities, Mapping) else None
    return isinstance(mentions, list) and any(isinstance(m, Mapping) and m.get("id") == user_id for m in mentions)


def new_or_edit(post: NormalizedPost) -> NormalizedPost | PostEdited:
    """A post with more than one id in ``edit_history_tweet_ids`` edits the one stored under the first (the
    original); its raw record keeps the latest id. The first version is a new post."""
    history = post.raw.get("edit_history_tweet_ids")
    if not isinstance(history, list) or len(history) < 2:
        return post
    first = history[0]
    if not isinstance(first, str) or not first.isdigit() or first == post.external_id:
        return post
    raw = {**post.raw, "latest_id": post.external_id}
    return PostEdited(dataclasses.replace(post, external_id=first, raw=raw))


def split_edits(posts: Iterable[NormalizedPost]) -> tuple[list[NormalizedPost], list[PostEdited]]:
    new: list[NormalizedPost] = []
    edits: list[PostEdited] = []
    for post in posts:
        sorted_post = new_or_edit(post)
        if isinstance(sorted_post, PostEdited):
            edits.append(sorted_post)
        else:
            new.append(sorted_post)
    return new, edits


def post_from_tweet(tweet: Any, users: Mapping[str, Mapping[str, Any]], matcher: KeywordMatcher, *,
                    summoned: bool, author_optional: bool = False) -> NormalizedPost:
    """``author_optional``: the Activity API's reply and quote events come with empty ``includes``; the author is
    then known by id only (the handle is the id until a post with the user object arrives)."""
    if not isinstance(tweet, Mapping):
        raise MalformedPayload(f"a post that is not a JSON object: {tweet!r:.80}")
    tweet_id = string(tweet, "id", "post", required=True)
    if not tweet_id.isdigit():
        raise MalformedPayload(f"post id {tweet_id[:40]!r} is not a number")
    what = f"post {tweet_id}"
    author_id = string(tweet, "author_id", what, required=True)
    user = users.get(author_id)
    if user is not None:
        person = author(user)
    elif author_optional and author_id.isdigit():
        person = NormalizedAuthor(external_id=author_id, handle=author_id)
    else:
        raise MalformedPayload(f"{what}: its author {author_id} is missing from includes.users")
    text = string(tweet, "text", what)
    note = tweet.get("note_tweet")
    if isinstance(note, Mapping) and isinstance(note.get("text"), str) and note["text"]:
        text = string(note, "text", f"{what}'s note_tweet")  # a long post: ``text`` holds only its first 280
    return NormalizedPost(
        external_id=tweet_id,
        author=person,
        text=text,
        created_at=parse_time(tweet.get("created_at"), f"{what}'s created_at"),
        in_reply_to_external_id=replied_to(tweet) or string(tweet, "in_reply_to_tweet_id", what),
        conversation_external_id=string(tweet, "conversation_id", what),
        language=string(tweet, "lang", what),
        url=f"https://x.com/{person.handle if user is not None else 'i'}/status/{tweet_id}",
        raw=dict(tweet),
        summoned=summoned,
        matched_keywords=matcher.match(text),
    )
