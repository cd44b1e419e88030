"""Reddit things from the recorded payload fixtures → normalized posts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fake_reddit import fixture

from caredesk.connectors.base import MalformedPayload, NormalizedAuthor
from caredesk.connectors.builtin.reddit.parse import post_from_thing
from caredesk.connectors.listening import KeywordMatcher

MATCHER = KeywordMatcher(["router", "outage"])


def _children(name: str) -> list[dict[str, object]]:
    return list(fixture(name)["data"]["children"])


def test_inbox_things() -> None:
    dm, reply, post_reply, from_mods = (post_from_thing(t, MATCHER, summoned=True) for t in _children("inbox.json"))
    assert dm is not None and reply is not None and post_reply is not None and from_mods is not None
    assert dm.external_id == "t4_2ab3cd4" and dm.is_direct
    assert dm.text == "re: my order\n\nStill nothing arrived."  # a reply in a conversation: no subject added
    assert dm.in_reply_to_external_id == "t4_2ab3cc1" and dm.conversation_external_id == "t4_2ab3cc1"
    assert dm.author == NormalizedAuthor(external_id="t2_happy_", handle="happy_customer", name="happy_customer")
    assert dm.created_at == datetime(2025, 11, 24, 13, 13, 20, tzinfo=UTC)
    assert reply.external_id == "t1_kx1y2z3" and not reply.is_direct
    assert reply.in_reply_to_external_id == "t1_kx1a0b0" and reply.conversation_external_id == "t3_1h2j3k4"
    assert reply.url == "https://www.reddit.com/r/acme/comments/1h2j3k4/router_drops_every_hour/kx1y2z3/?context=3"
    assert reply.matched_keywords == ("router",)
    assert post_reply.in_reply_to_external_id == "t3_1h2j3k4"
    # A message the subreddit's moderators sent has no author, only the subreddit.
    assert from_mods.author.handle == "r/acme"
    assert from_mods.text == "your post in r/acme\n\nYour post was removed: rule 2."


def test_a_mention() -> None:
    mention = post_from_thing(_children("mentions.json")[0], MATCHER, summoned=True)
    assert mention is not None and mention.summoned and mention.external_id == "t1_kx2m3n4"
    assert mention.conversation_external_id == "t3_1h9k8j7"
    assert mention.text.startswith("u/acme_care can you look at this?")


def test_search_posts_and_removed_text() -> None:
    found, removed = (post_from_thing(t, MATCHER, summoned=False) for t in _children("search.json"))
    assert found is not None and not found.summoned and found.matched_keywords == ("router",)
    assert found.text == "Acme router keeps dropping wifi\n\nEvery evening around 8 it disconnects. Firmware 2.1."
    assert found.url == "https://www.reddit.com/r/HomeNetworking/comments/1h5g6f7/acme_router_keeps_dropping_wifi/"
    assert found.conversation_external_id == "t3_1h5g6f7" and found.in_reply_to_external_id == ""
    assert removed is not None and removed.text == "Which router should I buy?"  # the title is what is left
    new = post_from_thing(_children("subreddit_new.json")[0], MATCHER, summoned=False)
    assert new is not None and new.text == "Is the Acme outage over?" and new.matched_keywords == ("outage",)


def test_a_deleted_comment_is_nothing() -> None:
    assert post_from_thing(_children("info_deleted_comment.json")[0], MATCHER, summoned=True) is None


@pytest.mark.parametrize(("change", "reason"), [
    ({"name": "t1_Bad!"}, "without a fullname"),
    ({"name": "t3_abc"}, "neither a post, a comment nor a message"),
    ({"created_utc": None}, "no created_utc"),
    ({"body": ["not", "text"]}, "body that is not a string"),
])
def test_broken_things_are_refused_with_a_reason(change: dict[str, object], reason: str) -> None:
    thing = _children("mentions.json")[0]
    thing["data"] = {**thing["data"], **change}  # type: ignore[dict-item]
    with pytest.raises(MalformedPayload, match=reason):
        post_from_thing(thing, MATCHER, summoned=True)
