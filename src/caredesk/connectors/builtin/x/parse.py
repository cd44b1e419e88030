"""X API v2 Tweet and User objects → caredesk's normalized posts. Pure functions; every field is written by
whoever posted, so each is checked before use and a broken record becomes a :class:`MalformedPayload`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from caredesk.connectors.base import MalformedPayload, NormalizedAuthor, NormalizedPost, unstorable
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


def _str(record: Mapping[str, Any], name: str, what: str, *, required: bool = False) -> str:
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
    users = includes.get("users") if isinstance(includes, Mapping) else None
    if not isinstance(users, list):
        return {}
    return {str(u["id"]): u for u in users if isinstance(u, Mapping) and isinstance(u.get("id"), str)}


def author(user: Mapping[str, Any]) -> NormalizedAuthor:
    metrics = user.get("public_metrics")
    followers = metrics.get("followers_count", 0) if isinstance(metrics, Mapping) else 0
    if isinstance(followers, bool) or not isinstance(followers, int) or followers < 0:
        followers = 0
    verified = user.get("verified")
    return NormalizedAuthor(external_id=_str(user, "id", "user", required=True),
                            handle=_str(user, "username", "user", required=True), name=_str(user, "name", "user"),
                            followers=followers, verified=verified is True)


def replied_to(tweet: Mapping[str, Any]) -> str:
    refs = tweet.get("referenced_tweets")
    if not isinstance(refs, list):
        return ""
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("type") == "replied_to" and isinstance(ref.get("id"), str):
            return str(ref["id"])
    return ""


def post_from_tweet(tweet: Any, users: Mapping[str, Mapping[str, Any]], matcher: KeywordMatcher, *,
                    summoned: bool) -> NormalizedPost:
    if not isinstance(tweet, Mapping):
        raise MalformedPayload(f"a post that is not a JSON object: {tweet!r:.80}")
    tweet_id = _str(tweet, "id", "post", required=True)
    if not tweet_id.isdigit():
        raise MalformedPayload(f"post id {tweet_id[:40]!r} is not a number")
    what = f"post {tweet_id}"
    author_id = _str(tweet, "author_id", what, required=True)
    user = users.get(author_id)
    if user is None:
        raise MalformedPayload(f"{what}: its author {author_id} is missing from includes.users")
    person = author(user)
    text = _str(tweet, "text", what)
    note = tweet.get("note_tweet")
    if isinstance(note, Mapping) and isinstance(note.get("text"), str) and note["text"]:
        text = _str(note, "text", f"{what}'s note_tweet")  # a long post: ``text`` holds only its first 280
    return NormalizedPost(
        external_id=tweet_id,
        author=person,
        text=text,
        created_at=parse_time(tweet.get("created_at"), f"{what}'s created_at"),
        in_reply_to_external_id=replied_to(tweet),
        conversation_external_id=_str(tweet, "conversation_id", what),
        language=_str(tweet, "lang", what),
        url=f"https://x.com/{person.handle}/status/{tweet_id}",
        raw=dict(tweet),
        summoned=summoned,
        matched_keywords=matcher.match(text),
    )
