"""Polling Reddit through the provider against the fake Reddit server: the inbox, mentions and subreddit keyword
searches as posts, cursors per source with ``after`` paging, and the 100-a-minute limit shared by all sources."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fake_reddit import NEWEST, OUR_NAME, FakeReddit, comment, message, post

from caredesk.connectors.base import RateLimited, Refused
from caredesk.connectors.builtin.reddit import RedditProvider

Make = Callable[..., RedditProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LISTEN = {"subreddits": ["learnpython"], "keywords": ["acme router"]}


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_inbox_mentions_and_keyword_posts_become_posts(make_provider: Make, fake: FakeReddit) -> None:
    fake.state.inbox = [
        message("dm1", "My bill is wrong", subject="billing"),
        comment("c1", "Your fix did not work", "t1_ours"),
        comment("m1", "u/acme_care look at this", "t3_abc", kind="username_mention", created=NEWEST - 5),
    ]
    fake.state.mentions = [comment("m1", "u/acme_care look at this", "t3_abc", kind="username_mention",
                                   created=NEWEST - 5)]
    fake.state.subreddits["learnpython"] = [
        post("p1", "My Acme Router keeps dropping", "Since Monday.", created=NEWEST - 10),
        post("p2", "Acme routers are great?", created=NEWEST - 11),  # Reddit's search finds it; the keyword not
        post("p3", "acme router from the brand", author=OUR_NAME, created=NEWEST - 12),
    ]
    result = make_provider(**LISTEN).fetch({}, NOW)
    by_id = {p.external_id: p for p in result.posts}
    assert sorted(by_id) == ["t1_c1", "t1_m1", "t3_p1", "t4_dm1"]  # m1 once; p2 no match; p3 the brand's own
    dm = by_id["t4_dm1"]
    assert dm.is_direct and dm.summoned and dm.text == "billing\n\nMy bill is wrong"
    assert dm.url == "https://www.reddit.com/message/messages/dm1"
    reply = by_id["t1_c1"]
    assert not reply.is_direct and reply.summoned and reply.in_reply_to_external_id == "t1_ours"
    assert reply.conversation_external_id == "t3_1h2j3k4"
    lead = by_id["t3_p1"]
    assert not lead.summoned and lead.matched_keywords == ("acme router",)
    assert lead.text == "My Acme Router keeps dropping\n\nSince Monday."
    assert lead.url == "https://www.reddit.com/r/learnpython/comments/p1/slug/"
    assert lead.created_at == datetime.fromtimestamp(NEWEST - 10, UTC)
    assert lead.author.handle == "router_owner" and lead.author.external_id == "t2_router_o"
    search = fake.requests_to("GET", "/r/learnpython/search")[0].query
    assert search == {"q": '"acme router"', "restrict_sr": "1", "sort": "new", "t": "all", "type": "link",
                      "limit": "100", "raw_json": "1"}
    assert result.rate_limit_remaining == 600 - len(fake.api_requests())
    assert set(result.cursor["sources"]) == {"inbox", "mentions", "r/learnpython"}


def test_every_request_carries_the_unique_user_agent(make_provider: Make, fake: FakeReddit) -> None:
    make_provider(**LISTEN).fetch({}, NOW)
    agents = {r.headers["user-agent"] for r in fake.state.requests}
    assert agents == {"server:com.example.caredesk:1.0.0 (by /u/care_ops)"}
    assert fake.requests_to("POST", "/api/v1/access_token")  # the token too


def test_a_poll_brings_only_what_is_new_and_follows_after_pages(make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider()
    fake.state.inbox = [message("a1", "first", created=NEWEST - 100)]
    first = provider.fetch({}, NOW)
    assert [p.external_id for p in first.posts] == ["t4_a1"]
    assert provider.fetch(first.cursor, later(1)).posts == []
    fake.page_size = 2
    fake.state.inbox += [message(f"n{i}", f"new {i}", created=NEWEST - 50 + i) for i in range(5)]
    second = provider.fetch(first.cursor, later(2))
    assert [p.external_id for p in second.posts] == [f"t4_n{i}" for i in range(5)]  # oldest first
    inbox_pages = [r.query.get("after") for r in fake.requests_to("GET", "/message/inbox")[2:]]
    assert inbox_pages == [None, "t4_n3", "t4_n1"]
    assert second.cursor["sources"]["inbox"] == {"since": NEWEST - 46, "seen": ["t4_n4"],
                                                 "read_at": later(2).timestamp()}


def test_things_of_the_same_second_are_neither_lost_nor_taken_twice(make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider(mentions=False)
    fake.state.inbox = [message("s1", "one", created=NEWEST)]
    cursor = provider.fetch({}, NOW).cursor
    fake.state.inbox.append(message("s2", "two", created=NEWEST))
    again = provider.fetch(cursor, later(1))
    assert [p.external_id for p in again.posts] == ["t4_s2"]
    assert sorted(again.cursor["sources"]["inbox"]["seen"]) == ["t4_s1", "t4_s2"]
    assert provider.fetch(again.cursor, later(2)).posts == []


def test_a_catch_up_cut_short_goes_on_where_it_stopped(make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider(mentions=False, requests_per_poll=3)
    fake.state.inbox = [message("old", "old", created=NEWEST - 1000)]
    cursor = provider.fetch({}, NOW).cursor
    fake.page_size = 1
    fake.state.inbox += [message(f"b{i}", f"backlog {i}", created=NEWEST - 500 + i) for i in range(5)]
    seen: list[str] = []
    for n in range(3):
        result = provider.fetch(cursor, later(n + 1))
        seen += [p.external_id for p in result.posts]
        cursor = result.cursor
        assert ("after" in cursor["sources"]["inbox"]) is (n == 0)  # 3 pages, then 2 more down to the floor
    assert sorted(seen) == sorted(f"t4_b{i}" for i in range(5))
    assert cursor["sources"]["inbox"] == {"since": NEWEST - 496, "seen": ["t4_b4"], "read_at": later(3).timestamp()}
    assert provider.fetch(cursor, later(4)).posts == []


def test_the_window_running_out_mid_poll_stops_and_the_next_poll_resumes_the_others(
        make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider(subreddits=["learnpython", "AskReddit"], keywords=["acme"])
    fake.state.subreddits["askreddit"] = [post("q1", "acme help", subreddit="AskReddit")]
    cursor = {"sources": {"inbox": {"since": 0, "seen": []}}}
    fake.state.remaining = 12  # whoami, then the inbox: Reddit says 10 are left
    result = provider.fetch(cursor, NOW)
    assert [r.path for r in fake.api_requests()] == ["/api/v1/me", "/message/inbox"]
    assert result.rate_limit_remaining == 10
    assert result.cursor["next"] == "mentions"
    assert result.cursor["resume_at"] == (NOW + timedelta(seconds=300)).isoformat()
    # Before the window resets nothing is asked; then the mentions and subreddits get their turn.
    assert provider.fetch(result.cursor, NOW + timedelta(seconds=60)).posts == []
    assert len(fake.api_requests()) == 2
    fake.state.remaining = 600
    later = provider.fetch(result.cursor, NOW + timedelta(seconds=301))
    assert [r.path for r in fake.api_requests()[2:]] == ["/message/mentions", "/r/learnpython/search",
                                                        "/r/AskReddit/search", "/message/inbox"]
    assert [p.external_id for p in later.posts] == ["t3_q1"]
    assert "resume_at" not in later.cursor


def test_a_busy_source_cannot_starve_the_others(make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider(requests_per_poll=4, username=OUR_NAME, **LISTEN)
    fake.page_size = 1
    cursor: dict[str, object] = {"sources": {k: {"since": 0, "seen": []} for k in ("inbox", "mentions",
                                                                                    "r/learnpython")}}
    fake.state.inbox = [message(f"i{i}", f"inbox {i}", created=NEWEST - i) for i in range(20)]
    fake.state.subreddits["learnpython"] = [post("p1", "acme router down")]
    taken: list[str] = []
    for n in range(3):
        result = provider.fetch(cursor, later(n))
        taken += [p.external_id for p in result.posts]
        cursor = dict(result.cursor)
    assert "t3_p1" in taken  # reached although the inbox alone could fill every poll
    assert fake.requests_to("GET", "/message/mentions")


def test_429_says_when_to_come_back(make_provider: Make, fake: FakeReddit) -> None:
    fake.state.remaining = 0
    fake.state.reset = 42
    with pytest.raises(RateLimited) as caught:
        make_provider(username=OUR_NAME).fetch({}, NOW)
    assert caught.value.retry_at == NOW + timedelta(seconds=42)


def test_deleted_things_are_dropped_and_deleted_authors_are_anonymous(make_provider: Make, fake: FakeReddit) -> None:
    gone = comment("d1", "[deleted]", "t1_ours", author="[deleted]")
    anonymous = comment("d2", "still here", "t1_ours", author="[deleted]")
    del anonymous["data"]["author_fullname"]
    fake.state.inbox = [gone, anonymous]
    result = make_provider(mentions=False).fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["t1_d2"]
    assert result.posts[0].author.handle == "[deleted]" and result.posts[0].author.external_id == "[deleted]:t1_d2"


def test_a_broken_thing_is_rejected_and_the_rest_kept(make_provider: Make, fake: FakeReddit) -> None:
    broken = message("x1", "text")
    broken["data"]["created_utc"] = "yesterday"
    nul = message("x2", "a \x00 b", created=NEWEST - 1)
    fake.state.inbox = [broken, nul, message("ok", "fine", created=NEWEST - 2)]
    result = make_provider(mentions=False).fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["t4_ok"]
    assert [r.reason for r in result.rejected] == ["inbox: t4_x1 has no created_utc time: 'yesterday'",
                                                   "inbox: t4_x2 has a NUL character in body"]


def test_a_source_read_half_a_minute_ago_is_left_alone(make_provider: Make, fake: FakeReddit) -> None:
    # Reddit caches listings for about 30 seconds: the worker polls every few seconds, Reddit is asked less.
    provider = make_provider(username=OUR_NAME)
    cursor = provider.fetch({}, NOW).cursor
    asked = len(fake.api_requests())
    assert provider.fetch(cursor, NOW + timedelta(seconds=20)).cursor == cursor
    assert len(fake.api_requests()) == asked
    provider.fetch(cursor, NOW + timedelta(seconds=31))
    assert len(fake.api_requests()) == asked + 2  # the inbox and the mentions again


def test_polls_spend_at_most_90_requests_a_minute(make_provider: Make, fake: FakeReddit) -> None:
    subreddits = [f"sub{i}" for i in range(48)]  # 50 sources with the inbox and the mentions
    provider = make_provider(username=OUR_NAME, subreddits=subreddits, keywords=["acme"], requests_per_poll=50)
    cursor = dict(provider.fetch({}, NOW).cursor)
    assert len(fake.api_requests()) == 50 and cursor["minute"] == {"start": NOW.timestamp(), "requests": 50}
    cursor = dict(provider.fetch(cursor, NOW + timedelta(seconds=40)).cursor)
    assert len(fake.api_requests()) == 90  # 40 more: the minute's 90 are spent, though a poll may make 50
    assert cursor["next"] == "r/sub39"  # began at the mentions (the turns rotate): 39 subreddits read
    assert provider.fetch(cursor, NOW + timedelta(seconds=50)).cursor == cursor
    assert len(fake.api_requests()) == 90
    provider.fetch(cursor, NOW + timedelta(seconds=61))  # a new minute: the ten not read for a minute now
    assert len(fake.api_requests()) == 100


def test_a_subreddit_reddit_refuses_waits_and_the_others_go_on(make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider(username=OUR_NAME, subreddits=["private_one", "learnpython"], keywords=["acme"])
    fake.fail("GET", "/r/private_one/search", 403, {"reason": "private", "message": "Forbidden", "error": 403})
    fake.state.subreddits["learnpython"] = [post("p1", "acme broke")]
    result = provider.fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["t3_p1"]
    assert [r.reason for r in result.rejected] == ["r/private_one: Reddit refused to read r/private_one "
                                                   "(403: Forbidden private)"]
    assert result.cursor["sources"]["r/private_one"] == {"refused_until": NOW.timestamp() + 900}
    provider.fetch(result.cursor, later(5))
    assert len(fake.requests_to("GET", "/r/private_one/search")) == 1  # not asked again for a while
    provider.fetch(result.cursor, later(16))
    assert len(fake.requests_to("GET", "/r/private_one/search")) == 2


def test_when_nothing_can_be_read_the_poll_fails_with_reddits_reason(make_provider: Make, fake: FakeReddit) -> None:
    fake.fail("GET", "/message/inbox", 403, {"message": "Forbidden", "error": 403})
    with pytest.raises(Refused, match="read inbox"):
        make_provider(username=OUR_NAME, mentions=False).fetch({}, NOW)


def test_new_posts_of_a_subreddit_are_matched_here(make_provider: Make, fake: FakeReddit) -> None:
    fake.state.subreddits["learnpython"] = [post("n1", "My ACME ROUTER died"), post("n2", "acme routers", created=1)]
    result = make_provider(username=OUR_NAME, inbox=False, mentions=False, subreddit_listing="new",
                           **LISTEN).fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["t3_n1"]
    assert [r.path for r in fake.api_requests()] == ["/r/learnpython/new"]
    assert fake.api_requests()[0].query == {"limit": "100", "raw_json": "1"}


def test_long_keyword_lists_are_searched_in_pieces(make_provider: Make, fake: FakeReddit) -> None:
    keywords = [f"product number {i:03d}" for i in range(40)]  # about 880 characters as one query
    make_provider(username=OUR_NAME, inbox=False, mentions=False, subreddits=["learnpython"],
                  keywords=keywords).fetch({}, NOW)
    queries = [r.query["q"] for r in fake.requests_to("GET", "/r/learnpython/search")]
    assert len(queries) == 2 and all(len(q) <= 500 for q in queries)
    assert " OR ".join(queries) == " OR ".join(f'"{k}"' for k in keywords)
