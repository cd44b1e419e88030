"""The X provider against the fake X server: whoami, mentions paging with since_id, includes.users hydration,
rate limits, 5xx, and the OAuth 2.0 token refresh that rotates the credentials."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fake_x import CLIENT_ID, OUR_ID, REFRESH, FakeX, fixture, tweet

from caredesk.connectors.base import AuthRevoked, Capability, RateLimited, Transient
from caredesk.connectors.builtin.x import XConfig, XProvider
from caredesk.connectors.registry import get_provider_class

Make = Callable[..., XProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_registered_provider(registered: type[XProvider]) -> None:
    assert get_provider_class("x") is XProvider
    assert XProvider.display_name == "X"
    assert XProvider.idempotent_replies is False
    assert {Capability.POLL, Capability.REPLY} <= XProvider.capabilities


def test_config_wants_https_except_on_this_machine() -> None:
    assert XConfig.model_validate({}).api == "https://api.x.com"
    with pytest.raises(ValueError, match="https"):
        XConfig.model_validate({"api": "http://api.x.com"})
    with pytest.raises(ValueError, match="number"):
        XConfig.model_validate({"user_id": "@brand"})


def test_whoami(make_provider: Make) -> None:
    identity = make_provider().whoami(NOW)
    assert identity.account_ids == (OUR_ID,)
    assert identity.handles == ("TwitterDev",)
    assert identity.display_name == "X Dev"


def test_whoami_with_a_revoked_token_and_no_refresh_token(make_provider: Make) -> None:
    with pytest.raises(AuthRevoked):
        make_provider({"access_token": "revoked"}).whoami(NOW)


def test_first_poll_reads_the_fixture_mentions_hydrated_from_includes(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = fixture("mentions.json")["data"]
    result = make_provider(keywords=["Acme"]).fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["1375083081430986752", "1375152598945312768"]
    older, newer = result.posts
    assert newer.author.handle == "suhemparack" and newer.author.followers == 1539
    assert newer.author.name == "Suhem Parack"
    assert newer.in_reply_to_external_id == "1375152449594523649"
    assert newer.conversation_external_id == "1375152449594523649"
    assert newer.created_at == datetime(2021, 3, 26, 19, 4, 55, tzinfo=UTC)
    assert newer.url == "https://x.com/suhemparack/status/1375152598945312768"
    assert all(p.summoned for p in result.posts)
    assert older.matched_keywords == ("Acme",) and newer.matched_keywords == ()
    # With keywords, recent search keeps its own position beside the mentions' (it found nothing here).
    assert result.cursor["since_id"] == "1375152598945312768"
    assert list(result.cursor["search"].values()) == [{}]
    assert result.credentials is None
    assert result.rate_limit_remaining == 74
    request = fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions")[0]
    assert request.query["expansions"] == "author_id"
    assert "referenced_tweets" in request.query["tweet.fields"]
    assert "public_metrics" in request.query["user.fields"]


def test_since_id_pages_through_everything_new(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet(str(100 + i), f"@TwitterDev help {i}") for i in range(7)]
    fake.page_size = 3  # type: ignore[attr-defined]
    provider = make_provider()
    first = provider.fetch({}, NOW)
    assert [p.external_id for p in first.posts] == ["104", "105", "106"]  # the first poll reads one page
    fake.state.mentions += [tweet(str(200 + i), f"@TwitterDev more {i}") for i in range(5)]
    second = provider.fetch(first.cursor, NOW)
    assert [p.external_id for p in second.posts] == ["200", "201", "202", "203", "204"]
    assert second.cursor == {"since_id": "204"}
    pages = fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions")[1:]
    assert [r.query.get("pagination_token") for r in pages] == [None, "3"]
    assert {r.query["since_id"] for r in pages} == {"106"}
    third = provider.fetch(second.cursor, NOW)
    assert third.posts == [] and third.cursor == {"since_id": "204"}


def test_a_broken_record_is_rejected_and_the_rest_kept(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet("300", "@TwitterDev fine"), tweet("301", "@TwitterDev ghost", author_id="42"),
                           tweet("302", "bad time", created_at="yesterday")]
    result = make_provider().fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["300"]
    assert sorted(r.reason for r in result.rejected) == [
        "post 301: its author 42 is missing from includes.users",
        "post 302's created_at is not an ISO 8601 timestamp: 'yesterday'",
    ]
    assert result.cursor == {"since_id": "302"}  # rejected once (kept with its raw record), not on every poll


def test_the_brands_own_posts_are_left_out(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet("400", "@TwitterDev talking to myself", author_id=OUR_ID)]
    result = make_provider().fetch({}, NOW)
    assert result.posts == []
    assert result.cursor == {"since_id": "400"}


def test_429_gives_the_reset_time(make_provider: Make, fake: FakeX) -> None:
    fake.fail("GET", f"/2/users/{OUR_ID}/mentions", 429, fixture("too_many_requests.json"),
              headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": "1795435200"})
    with pytest.raises(RateLimited) as caught:
        make_provider(user_id=OUR_ID).fetch({"since_id": "1"}, NOW)
    assert caught.value.retry_at == datetime.fromtimestamp(1795435200, UTC)


def test_5xx_is_transient(make_provider: Make, fake: FakeX) -> None:
    fake.fail("GET", f"/2/users/{OUR_ID}/mentions", 503, {"title": "Service Unavailable"})
    with pytest.raises(Transient, match="503"):
        make_provider(user_id=OUR_ID).fetch({}, NOW)


def test_an_expired_token_is_refreshed_and_the_rotated_pair_returned(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet("500", "@TwitterDev hi")]
    fake.state.access_tokens = {"someone-else"}  # ours expired
    provider = make_provider(user_id=OUR_ID)
    result = provider.fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["500"]
    assert result.credentials == {"access_token": "access-1", "refresh_token": "refresh-1", "client_id": CLIENT_ID,
                                  "client_secret": None, "bearer_token": None, "consumer_secret": None,
                                  "expires_at": int(NOW.timestamp()) + 7200, "scope": ""}  # X: expires_in 7200
    token_request = fake.requests_to("POST", "/2/oauth2/token")[0]
    assert b"grant_type=refresh_token" in token_request.body
    assert f"refresh_token={REFRESH}".encode() in token_request.body
    assert REFRESH not in fake.state.refresh_tokens  # X's refresh tokens are single use


def test_a_confidential_client_refreshes_with_basic_auth(make_provider: Make, fake: FakeX) -> None:
    fake.state.access_tokens = {"someone-else"}
    provider = make_provider({"access_token": "old", "refresh_token": REFRESH, "client_id": CLIENT_ID,
                              "client_secret": "shh"}, user_id=OUR_ID)
    assert provider.fetch({}, NOW).credentials is not None
    assert fake.requests_to("POST", "/2/oauth2/token")[0].headers["authorization"].startswith("Basic ")


def test_a_refused_refresh_is_auth_revoked(make_provider: Make, fake: FakeX) -> None:
    fake.state.access_tokens = {"someone-else"}
    fake.state.refresh_tokens = set()
    with pytest.raises(AuthRevoked, match="renew"):
        make_provider(user_id=OUR_ID).fetch({}, NOW)


def test_without_an_injected_client_calls_nest_on_one_client_of_its_own(fake: FakeX) -> None:
    # A poll asks whoami first; both must run on the client the poll opened, and it is closed afterwards.
    provider = XProvider(XConfig.model_validate({"api": fake.url}), {"access_token": "good-access"})
    fake.state.mentions = [tweet("600", "@TwitterDev hi")]
    assert [p.external_id for p in provider.fetch({}, NOW).posts] == ["600"]
    assert [p.external_id for p in provider.fetch({"since_id": "599"}, NOW).posts] == ["600"]


def test_whoami_outside_a_poll_does_not_spend_the_refresh_token(make_provider: Make, fake: FakeX) -> None:
    fake.state.access_tokens = {"someone-else"}
    with pytest.raises(AuthRevoked, match="next poll renews it"):
        make_provider().whoami(NOW)
    assert REFRESH in fake.state.refresh_tokens


def test_a_catch_up_longer_than_the_page_cap_goes_on_below_where_it_stopped(make_provider: Make, fake: FakeX,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from caredesk.connectors.builtin.x import timeline as module

    monkeypatch.setattr(module, "MAX_PAGES", 2)
    fake.page_size = 2  # type: ignore[attr-defined]
    fake.state.mentions = [tweet(str(100 + i), f"@TwitterDev help {i}") for i in range(7)]  # 100..106
    provider = make_provider(user_id=OUR_ID)
    first = provider.fetch({"since_id": "99"}, NOW)
    assert [p.external_id for p in first.posts] == ["103", "104", "105", "106"]
    assert first.cursor == {"since_id": "99", "until_id": "103", "newest": "106"}
    fake.state.mentions.append(tweet("107", "@TwitterDev newer"))
    second = provider.fetch(first.cursor, NOW)
    assert [p.external_id for p in second.posts] == ["100", "101", "102"]
    assert second.cursor == {"since_id": "106"}
    assert [p.external_id for p in provider.fetch(second.cursor, NOW).posts] == ["107"]


def test_a_long_post_keeps_its_whole_text(make_provider: Make, fake: FakeX) -> None:
    long_text = "@TwitterDev " + "my order is late. " * 30
    fake.state.mentions = [tweet("900", long_text[:280], note_tweet={"text": long_text})]
    assert make_provider().fetch({}, NOW).posts[0].text == long_text
