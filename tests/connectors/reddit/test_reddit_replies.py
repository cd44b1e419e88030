"""Replies through the Reddit provider against the fake server: ``/api/comment`` to posts, comments and
messages; Reddit's ``json.errors`` as refusals with its reason; and, as Reddit has no idempotency key, a send
whose answer was lost looked for among the brand's own comments before anything is sent again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fake_reddit import OUR_NAME, FakeReddit, comment, fixture, message, post

from caredesk.connectors.base import CannotTell, NormalizedAuthor, OutboundReply, RateLimited, Refused, Transient
from caredesk.connectors.builtin.reddit import RedditProvider

Make = Callable[..., RedditProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CUSTOMER = NormalizedAuthor(external_id="t2_happy_", handle="happy_customer")
TEXT = "Sorry about that! **Could you** send us your order number? <script>alert(1)</script>"


def reply(parent: str = "t1_c1", text: str = TEXT, direct: bool = False) -> OutboundReply:
    return OutboundReply(idempotency_key="reply-1", text=text, in_reply_to_external_id=parent,
                         in_reply_to_author=CUSTOMER, is_direct=direct)


@pytest.fixture
def parents(fake: FakeReddit) -> None:
    fake.state.inbox = [comment("c1", "still broken", "t1_ours"), message("m1", "where is my order")]
    fake.state.subreddits["acme"] = [post("p1", "acme router down", subreddit="acme")]


@pytest.mark.parametrize(("parent", "kind"), [("t1_c1", "t1"), ("t3_p1", "t1"), ("t4_m1", "t4")])
def test_a_reply_is_a_comment_or_a_message_reply(make_provider: Make, fake: FakeReddit, parents: None, parent: str,
                                                 kind: str) -> None:
    sent = make_provider().send_reply(reply(parent, direct=kind == "t4"), NOW)
    [posted] = fake.requests_to("POST", "/api/comment")
    assert posted.form == {"thing_id": parent, "text": TEXT, "api_type": "json"}  # markdown as written
    assert posted.query == {"raw_json": "1"}
    assert sent.external_id.startswith(f"{kind}_reply")
    if kind == "t1":
        assert sent.url == f"https://www.reddit.com/r/test/comments/post/slug/{sent.external_id[3:]}/"
    else:
        assert sent.url == f"https://www.reddit.com/message/messages/{sent.external_id[3:]}"
    assert sent.created_at > datetime(2025, 1, 1, tzinfo=UTC)


def test_the_answer_of_a_recorded_reply_is_read(make_provider: Make, fake: FakeReddit, parents: None) -> None:
    fake.fail("POST", "/api/comment", 200, fixture("comment_on_comment.json"))
    sent = make_provider().send_reply(reply(), NOW)
    assert sent.external_id == "t1_kx4r5s6"
    assert sent.url == "https://www.reddit.com/r/acme/comments/1h2j3k4/slug/kx4r5s6/"
    assert sent.created_at == datetime.fromtimestamp(1763990500.0, UTC)


def test_a_locked_thread_is_refused_with_reddits_reason(make_provider: Make, fake: FakeReddit, parents: None) -> None:
    fake.state.locked.add("t3_p1")
    with pytest.raises(Refused, match=r"Comments are locked. \(THREAD_LOCKED\)"):
        make_provider().send_reply(reply("t3_p1"), NOW)
    assert fake.state.comments == []


def test_a_deleted_parent_is_refused(make_provider: Make, fake: FakeReddit, parents: None) -> None:
    fake.state.deleted.add("t1_c1")
    with pytest.raises(Refused, match="DELETED_COMMENT"):
        make_provider().send_reply(reply(), NOW)


def test_reddits_ratelimit_error_says_when(make_provider: Make, fake: FakeReddit, parents: None) -> None:
    fake.fail("POST", "/api/comment", 200, fixture("error_ratelimit.json"))
    with pytest.raises(RateLimited, match="Try again in 6 minutes") as caught:
        make_provider().send_reply(reply(), NOW)
    assert caught.value.retry_at == NOW + timedelta(minutes=6, seconds=1)


def test_a_429_on_send_says_when(make_provider: Make, fake: FakeReddit, parents: None) -> None:
    fake.fail("POST", "/api/comment", 429, {"message": "Too Many Requests", "error": 429},
              headers={"x-ratelimit-reset": "17"})
    with pytest.raises(RateLimited) as caught:
        make_provider().send_reply(reply(), NOW)
    assert caught.value.retry_at == NOW + timedelta(seconds=17)


def test_the_length_and_kind_are_checked_before_any_request(make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider()
    with pytest.raises(Refused, match="too long: 10001 characters, the limit is 10000"):
        provider.send_reply(reply(text="a" * 10_001), NOW)
    with pytest.raises(Refused, match="not a Reddit post, comment or message"):
        provider.send_reply(reply("t5_abc"), NOW)
    with pytest.raises(Refused, match="private reply answers a private message"):
        provider.send_reply(reply("t1_c1", direct=True), NOW)
    assert fake.state.requests == []
    rules = provider.reply_rules()
    assert rules.problem("a" * 10_000) is None and rules.answers_unsummoned and rules.direct_messages


def test_a_lost_answer_is_found_and_nothing_is_sent_twice(make_provider: Make, fake: FakeReddit,
                                                          parents: None) -> None:
    fake.fail("POST", "/api/comment", 503, {"message": "Service Unavailable"}, after_effect=True)
    provider = make_provider()
    with pytest.raises(Transient):
        provider.send_reply(reply(), NOW)
    found = provider.find_reply(reply(), NOW)
    assert found is not None and found.external_id == fake.state.comments[0]["data"]["name"]
    assert len(fake.requests_to("POST", "/api/comment")) == 1
    assert fake.requests_to("GET", f"/user/{OUR_NAME}/comments")[0].query == {
        "sort": "new", "limit": "100", "type": "comments", "raw_json": "1"}


def test_a_lost_message_reply_is_found_among_the_sent_messages(make_provider: Make, fake: FakeReddit,
                                                              parents: None) -> None:
    fake.fail("POST", "/api/comment", 502, {"message": "Bad Gateway"}, after_effect=True)
    provider = make_provider()
    with pytest.raises(Transient):
        provider.send_reply(reply("t4_m1", direct=True), NOW)
    found = provider.find_reply(reply("t4_m1", direct=True), NOW)
    assert found is not None and found.external_id == fake.state.sent[0]["data"]["name"]


def test_find_reply_ignores_other_texts_and_other_parents(make_provider: Make, fake: FakeReddit,
                                                          parents: None) -> None:
    provider = make_provider()
    provider.send_reply(reply(text="Another answer"), NOW)
    provider.send_reply(reply("t3_p1"), NOW)
    assert provider.find_reply(reply(), NOW) is None


def test_find_reply_cannot_tell_beyond_the_pages_it_reads(make_provider: Make, fake: FakeReddit,
                                                          parents: None) -> None:
    fake.page_size = 2
    provider = make_provider()
    for i in range(5):
        provider.send_reply(reply("t3_p1", text=f"answer {i}"), NOW)
    with pytest.raises(CannotTell, match="latest"):
        provider.find_reply(reply(), NOW)


def test_find_reply_cannot_tell_when_reddit_cannot_be_asked(make_provider: Make, fake: FakeReddit) -> None:
    fake.fail("GET", f"/user/{OUR_NAME}/comments", 500, {"message": "Internal Server Error"})
    with pytest.raises(CannotTell, match="500"):
        make_provider(username=OUR_NAME).find_reply(reply(), NOW)
