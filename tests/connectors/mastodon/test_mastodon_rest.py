"""The provider against a local fake Mastodon: identity, instance limits, the notifications poll and its errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fake_mastodon import TOKEN, FakeMastodon, customer, mention, status

from caredesk.connectors.base import (
    AuthRevoked,
    Capability,
    Pollable,
    PostEdited,
    RateLimited,
    Streamable,
    Transient,
)
from caredesk.connectors.builtin.mastodon import MastodonProvider
from caredesk.connectors.registry import get_provider_class

Make = Callable[..., MastodonProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def nid(n: int) -> str:
    return str(1_000_000 + n)


def add_mentions(fake: FakeMastodon, numbers: range, **status_changes: Any) -> None:
    for n in numbers:
        body = status(str(9_000_000 + n), f"help me {n}", mention_us=True, **status_changes)
        fake.notifications.append(mention(nid(n), body))


def test_registered_provider_is_found_by_key(registered: type[MastodonProvider]) -> None:
    cls = get_provider_class("mastodon")
    assert cls is MastodonProvider and cls.display_name == "Mastodon"
    assert {Capability.STREAM, Capability.POLL, Capability.REPLY, Capability.DIRECT_MESSAGES} == cls.capabilities
    creds = cls.parse_credentials({"access_token": "abc", "client_id": "id", "client_secret": "s3cret"})
    assert "s3cret" not in repr(creds) and creds.to_storage()["client_secret"] == "s3cret"
    assert isinstance(cls.parse_config({"instance": "https://m.example"}), cls.config_model)


def test_whoami_reads_verify_credentials(fake: FakeMastodon, make_provider: Make) -> None:
    provider = make_provider()
    assert isinstance(provider, Pollable) and isinstance(provider, Streamable)
    identity = provider.whoami()
    assert identity.account_ids == ("14715",)
    assert identity.handles == ("trwnh",)
    [request] = fake.requests_to("/api/v1/accounts/verify_credentials")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_revoked_token_is_auth_revoked(fake: FakeMastodon, make_provider: Make) -> None:
    with pytest.raises(AuthRevoked, match="The access token is invalid"):
        make_provider({"access_token": "revoked"}).whoami()
    with pytest.raises(AuthRevoked, match="incomplete"):
        make_provider({"token": "x"}).whoami()


def test_instance_limits_and_streaming_host(fake: FakeMastodon, make_provider: Make) -> None:
    fake.max_characters = 1000
    provider = make_provider()
    info = provider.instance_info()
    assert (info.max_characters, info.characters_reserved_per_url, info.streaming_url) == (1000, 23, fake.url)
    rules = provider.reply_rules()
    assert (rules.max_length, rules.unit, rules.direct_messages, rules.answers_unsummoned) == (
        1000, "characters", True, True)
    assert rules.problem("x" * 1000) is None and rules.problem("x" * 1001) is not None
    assert make_provider(max_characters=300).reply_rules().max_length == 300


def test_reply_rules_never_ask_the_server(fake: FakeMastodon, make_provider: Make) -> None:
    fake.max_characters = 1000
    rules = make_provider().reply_rules()
    assert rules.max_length == 500 and fake.requests == []
    assert rules.measure("@carol@example.social see https://example.com/" + "x" * 60) == len("@carol see ") + 23
    assert make_provider(max_characters=1000).reply_rules().max_length == 1000


def test_poll_pages_mentions_from_the_cursor_with_min_id(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 101))
    fake.notifications.append({**mention(nid(101), status("9999", "fav")), "type": "favourite"})
    provider = make_provider()

    result = provider.fetch({"notifications": nid(10)}, NOW)

    assert [p.external_id for p in sorted(result.posts, key=lambda p: int(p.external_id))] == [
        str(9_000_000 + n) for n in range(11, 101)]
    assert len({p.external_id for p in result.posts}) == 90
    assert result.cursor == {"notifications": nid(100)}
    assert all(p.summoned and not p.is_direct for p in result.posts)
    pages = fake.requests_to("/api/v1/notifications")
    assert pages[0].query["min_id"] == [nid(10)] and pages[0].query["types[]"] == ["mention"]
    assert [p.query.get("min_id") for p in pages[1:]] == [[nid(50)], [nid(90)], [nid(100)]]

    again = provider.fetch(result.cursor, NOW)
    assert again.posts == [] and again.cursor == result.cursor


def test_first_poll_reads_the_latest_page_only(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 61))
    result = make_provider().fetch({}, NOW)
    assert len(result.posts) == 40 and result.cursor == {"notifications": nid(60)}


def test_poll_turns_mentions_into_posts_with_their_fields(fake: FakeMastodon, make_provider: Make) -> None:
    author = customer("555", "carol@example.social", display_name="Carol", followers_count=1234, bot=False)
    fake.notifications.append(mention(nid(1), status(
        "77", "", html_content="<p>@trwnh my order &lt;#42&gt; never came</p><script>steal()</script>",
        author=author, visibility="direct", mention_us=True, in_reply_to_id="76", language="fr",
        created_at="2026-11-20T10:00:00.000Z",
    )))
    [post] = make_provider().fetch({}, NOW).posts
    assert post.text == "@trwnh my order <#42> never came"
    assert post.is_direct and post.summoned
    assert post.in_reply_to_external_id == "76"
    assert post.language == "fr"
    assert post.created_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert (post.author.external_id, post.author.handle, post.author.name, post.author.followers) == (
        "555", "carol@example.social", "Carol", 1234)
    assert post.url == "https://pl.nulled.red/objects/77"


def test_an_edited_mention_is_a_post_and_an_edit(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 2), edited_at="2022-08-31T00:00:00.000Z")
    result = make_provider().fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["9000001"]
    assert [type(c) for c in result.changes] == [PostEdited]


def test_a_broken_notification_is_rejected_and_the_rest_kept(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 4))
    fake.notifications[1]["status"]["created_at"] = "not a time"
    result = make_provider().fetch({}, NOW)
    assert sorted(p.external_id for p in result.posts) == ["9000001", "9000003"]
    [rejected] = result.rejected
    assert "created_at" in rejected.reason and rejected.raw["id"] == nid(2)
    assert result.cursor == {"notifications": nid(3)}


def test_429_raises_rate_limited_until_the_reset(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 3))
    fake.fail("/api/v1/notifications", 429, {"X-RateLimit-Reset": "2026-11-23T12:04:30.000Z",
                                              "X-RateLimit-Remaining": "0"}, {"error": "Too many requests"})
    provider = make_provider()
    with pytest.raises(RateLimited) as raised:
        provider.fetch({}, NOW)
    assert raised.value.retry_at == datetime(2026, 11, 23, 12, 4, 30, tzinfo=UTC)
    assert len(provider.fetch({}, NOW).posts) == 2


def test_a_spent_rate_limit_stops_paging_and_keeps_what_was_read(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 101))
    provider = make_provider()
    provider.whoami()
    fake.rate_remaining = 2  # the next answer says 1 left, the one after 0
    result = provider.fetch({"notifications": nid(0)}, NOW)
    assert len(result.posts) == 80 and result.cursor == {"notifications": nid(80)}
    assert len(fake.requests_to("/api/v1/notifications")) == 2


def test_a_5xx_storm_loses_nothing(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 101))
    provider = make_provider()
    provider.whoami()
    cursor = {"notifications": nid(0)}
    fake.fail("/api/v1/notifications", 503, times=3)
    for _ in range(3):
        with pytest.raises(Transient, match="503"):
            provider.fetch(cursor, NOW)
    fake.fail("/api/v1/notifications", 502, after=1)  # the second page fails: the first is kept
    partial = provider.fetch(cursor, NOW)
    assert len(partial.posts) == 40 and partial.cursor == {"notifications": nid(40)}
    rest = provider.fetch(partial.cursor, NOW)
    delivered = [p.external_id for p in [*partial.posts, *rest.posts]]
    assert sorted(delivered) == sorted(str(9_000_000 + n) for n in range(1, 101))
    assert rest.cursor == {"notifications": nid(100)}


def test_an_error_after_some_pages_returns_those_pages(fake: FakeMastodon, make_provider: Make) -> None:
    add_mentions(fake, range(1, 101))
    provider = make_provider(hashtags=("caredesk",))
    provider.whoami()
    fake.tags["caredesk"] = [status(str(8_000_000 + n), f"#caredesk post {n}", tags=("caredesk",)) for n in range(3)]
    fake.fail("/api/v1/timelines/tag/caredesk", 503)
    result = provider.fetch({"notifications": nid(0)}, NOW)
    assert len(result.posts) == 100  # the mentions; the hashtag timeline failed
    assert result.cursor == {"notifications": nid(100)}
    later = provider.fetch(result.cursor, NOW)
    assert sorted(p.external_id for p in later.posts) == ["8000000", "8000001", "8000002"]
    assert not any(p.summoned for p in later.posts)
    assert later.cursor == {"notifications": nid(100), "tags": {"caredesk": "8000002"}}
