"""Keyword listening by polling: recent search beside the mentions timeline, its own cursor, its queries within
X's length limit, matches unsummoned unless they address the brand, and what each read is billed as."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fake_x import OUR_ID, FakeX, tweet

from caredesk.connectors.builtin.x import XConfig, XProvider
from caredesk.connectors.builtin.x.search import build_queries, query_key
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, Meter, Operation

Make = Callable[..., XProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SEARCH = "/2/tweets/search/recent"


def test_a_poll_with_keywords_searches_too_and_keeps_matches_unsummoned(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet("600", "@TwitterDev my router is dead")]
    fake.state.search = [
        tweet("610", "this router brand is awful"),
        tweet("600", "@TwitterDev my router is dead"),  # also a mention: kept once, summoned
        tweet("620", "@TwitterDev router again", entities={"mentions": [{"id": OUR_ID, "username": "TwitterDev"}]}),
        tweet("630", "router vs orange juice", ),
        tweet("640", "our own router post", author_id=OUR_ID),
    ]
    provider = make_provider(user_id=OUR_ID, keywords=["router"], exclude=["orange juice"])
    result = provider.fetch({}, NOW)
    got = {p.external_id: p for p in result.posts}
    assert list(got) == ["600", "610", "620"]  # the excluded and our own left out
    assert got["600"].summoned and got["620"].summoned
    assert not got["610"].summoned and got["610"].matched_keywords == ("router",)
    (request,) = fake.requests_to("GET", SEARCH)
    query = request.query["query"]
    assert query == f'(router) -is:retweet -from:{OUR_ID} -"orange juice"'
    assert result.cursor == {"since_id": "600", "search": {query_key(query): {"since_id": "640"}}}
    assert [(u.operation, u.resource_ids) for u in result.usage] == [
        (Operation.OWNED_READ, ("600",)), (Operation.POST_READ, ("640", "630", "620", "610", "600"))]
    bill = Meter(DEFAULT_X_PRICES).bill(result.usage)
    assert sum(line.cost for line in bill) == Decimal("0.001") + 5 * Decimal("0.005")

    fake.state.search.append(tweet("650", "router down"))
    again = provider.fetch(result.cursor, NOW)
    assert [p.external_id for p in again.posts] == ["650"]
    assert fake.requests_to("GET", SEARCH)[-1].query["since_id"] == "640"
    assert fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions")[-1].query["since_id"] == "600"


def test_no_keywords_no_search(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet("600", "@TwitterDev hi")]
    result = make_provider(user_id=OUR_ID).fetch({"since_id": "1", "search": {"stale": {"since_id": "5"}}}, NOW)
    assert fake.requests_to("GET", SEARCH) == []
    assert result.cursor == {"since_id": "600"}  # the old keywords' positions are dropped


def test_edited_matches_edit_the_first_version(make_provider: Make, fake: FakeX) -> None:
    fake.state.search = [tweet("700", "router fine"),
                         tweet("701", "router broken", edit_history_tweet_ids=["700", "701"])]
    result = make_provider(user_id=OUR_ID, keywords=["router"]).fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["700"]
    (change,) = result.changes
    assert change.post.external_id == "700" and change.post.text == "router broken"  # type: ignore[union-attr]
    assert change.post.raw["latest_id"] == "701"  # type: ignore[union-attr]


def test_queries_split_within_the_limit() -> None:
    config = XConfig.model_validate({"keywords": [f"word{n}" for n in range(120)] + ["two words", 'say "hi"'],
                                     "hashtags": ["acmefail"], "exclude": [f"noise{n}" for n in range(100)]})
    queries = build_queries(config, OUR_ID, 512)
    assert len(queries) > 1 and all(len(q) <= 512 for q in queries)
    joined = " ".join(queries)
    assert all(f"word{n} " in joined or f"word{n})" in joined for n in range(120))
    assert '"two words"' in joined and '"say hi"' in joined and "#acmefail" in joined
    assert all(q.endswith(queries[0].split(")", 1)[1]) for q in queries)  # the same exclusions on each
    assert len(queries[0].split(")", 1)[1]) <= 256  # exclusions take half the room at most
    assert build_queries(XConfig.model_validate({}), OUR_ID, 512) == []
    with pytest.raises(ValueError, match="too long"):
        build_queries(XConfig.model_validate({"keywords": ["x" * 200]}), OUR_ID, 64)


def test_a_search_failure_keeps_the_mentions_and_warns(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet("600", "@TwitterDev hi")]
    fake.fail("GET", SEARCH, 503, {"title": "Service Unavailable", "detail": "Service Unavailable"})
    old = {"since_id": "1", "search": {"abc": {"since_id": "5"}}}
    result = make_provider(user_id=OUR_ID, keywords=["router"]).fetch(old, NOW)
    assert [p.external_id for p in result.posts] == ["600"]
    assert result.cursor == {"since_id": "600", "search": {"abc": {"since_id": "5"}}}  # search: where it was
    (warning,) = result.warnings
    assert "recent search" in warning and "503" in warning
    assert [u.operation for u in result.usage] == [Operation.OWNED_READ]  # the mentions read is billed


def test_a_search_rate_limit_holds_the_search_back_while_the_mentions_go_on(make_provider: Make,
                                                                          fake: FakeX) -> None:
    fake.state.mentions = [tweet("600", "@TwitterDev hi")]
    fake.state.search = [tweet("610", "router down")]
    fake.fail("GET", SEARCH, 429, {"title": "Too Many Requests"}, headers={"x-rate-limit-reset": "1900000000"})
    provider = make_provider(user_id=OUR_ID, keywords=["router"])
    first = provider.fetch({}, NOW)
    reset = datetime.fromtimestamp(1900000000, UTC)
    assert [p.external_id for p in first.posts] == ["600"]
    assert first.cursor == {"since_id": "600", "search_retry_at": reset.isoformat()}
    assert "rate limit" in first.warnings[0]
    fake.state.mentions.append(tweet("601", "@TwitterDev again"))
    second = provider.fetch(first.cursor, NOW)
    assert [p.external_id for p in second.posts] == ["601"]
    assert len(fake.requests_to("GET", SEARCH)) == 1  # not asked again before the reset
    assert second.cursor["search_retry_at"] == reset.isoformat() and "until" in second.warnings[0]
    third = provider.fetch(second.cursor, reset)
    assert [p.external_id for p in third.posts] == ["610"] and third.warnings == ()
    assert "search_retry_at" not in third.cursor and list(third.cursor["search"].values()) == [{"since_id": "610"}]


def test_a_search_failure_after_a_token_renewal_still_hands_out_the_rotated_pair(make_provider: Make,
                                                                                 fake: FakeX) -> None:
    fake.state.mentions = [tweet("600", "@TwitterDev hi")]
    fake.state.access_tokens = {"someone-else"}  # ours expired: the mentions read renews it
    fake.fail("GET", SEARCH, 503, {"title": "Service Unavailable"})
    old = {"since_id": "1", "search": {"abc": {"since_id": "5"}}}
    result = make_provider(user_id=OUR_ID, keywords=["router"]).fetch(old, NOW)
    assert result.credentials is not None and result.credentials["refresh_token"] == "refresh-1"
    assert [p.external_id for p in result.posts] == ["600"]
    assert result.cursor == {"since_id": "600", "search": {"abc": {"since_id": "5"}}}  # search: where it was


def test_a_search_position_older_than_the_seven_days_starts_at_the_window(make_provider: Make,
                                                                         fake: FakeX) -> None:
    from caredesk.connectors.builtin.x.search import SNOWFLAKE_EPOCH_MS, within_window

    def id_at(when: datetime) -> int:
        return (int(when.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS) << 22

    provider = make_provider(user_id=OUR_ID, keywords=["router"])
    key = query_key(build_queries(provider.config, OUR_ID, 512)[0])
    old = str(id_at(NOW - timedelta(days=9)))  # a quiet query: nothing matched for nine days
    fresh = str(id_at(NOW - timedelta(days=1)))
    fake.state.search = [tweet(fresh, "router down")]
    result = provider.fetch({"search": {key: {"since_id": old}}}, NOW)
    since = int(fake.requests_to("GET", SEARCH)[0].query["since_id"])
    assert id_at(NOW - timedelta(days=7)) < since < id_at(NOW - timedelta(days=6, hours=23))  # X would refuse old
    assert [p.external_id for p in result.posts] == [fresh]
    recent = {"since_id": fresh}
    assert within_window(recent, NOW) is recent
    paging = within_window({"since_id": old, "until_id": fresh, "newest": fresh}, NOW)
    assert paging["until_id"] == fresh and int(paging["since_id"]) == since  # the paging goes on above the floor
