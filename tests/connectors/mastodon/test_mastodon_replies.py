"""Replies and account setup against the fake Mastodon: idempotent sends, refusals, visibility, finding a reply
whose answer was lost, and the OAuth app registration and code exchange."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fake_mastodon import TOKEN, FakeMastodon, customer, status

from caredesk.connectors.base import (
    AuthRevoked,
    CannotTell,
    NormalizedAuthor,
    OutboundReply,
    RateLimited,
    Refused,
    Transient,
)
from caredesk.connectors.builtin.mastodon import MastodonProvider, oauth
from caredesk.connectors.builtin.mastodon.provider import with_mention

Make = Callable[..., MastodonProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CAROL = NormalizedAuthor(external_id="555", handle="carol@example.social", name="Carol")


def reply(text: str = "Sorry about that, we are on it.", *, key: str = "reply-1", parent: str = "700",
          direct: bool = False) -> OutboundReply:
    return OutboundReply(idempotency_key=key, text=text, in_reply_to_external_id=parent, in_reply_to_author=CAROL,
                         is_direct=direct)


def parent(fake: FakeMastodon, status_id: str = "700", visibility: str = "unlisted") -> None:
    fake.statuses[status_id] = status(status_id, "@trwnh my order is late", author=customer("555", CAROL.handle),
                                      visibility=visibility, mention_us=True)


def test_a_retried_send_publishes_exactly_one_status(fake: FakeMastodon, make_provider: Make) -> None:
    parent(fake)
    provider = make_provider()
    fake.lose_answer_once = True  # the server creates the status, then the answer is lost
    with pytest.raises(Transient):
        provider.send_reply(reply(), NOW)
    sent = provider.send_reply(reply(), NOW)

    assert len(fake.posted) == 1
    [published] = fake.posted
    assert sent.external_id == published["id"]
    assert sent.url == published["url"] and sent.created_at.tzinfo is not None
    posts = fake.requests_to("/api/v1/statuses")
    assert [r.headers["idempotency-key"] for r in posts] == ["reply-1", "reply-1"]
    form = posts[-1].form
    assert form == {"status": "@carol@example.social Sorry about that, we are on it.", "in_reply_to_id": "700",
                    "visibility": "unlisted"}


def test_a_refusal_carries_the_servers_reason(fake: FakeMastodon, make_provider: Make) -> None:
    parent(fake)
    with pytest.raises(Refused, match="Text character limit of 500 exceeded"):
        make_provider().send_reply(reply("x" * 600), NOW)
    assert fake.posted == []


def test_a_reply_to_a_deleted_post_is_refused(fake: FakeMastodon, make_provider: Make) -> None:
    with pytest.raises(Refused, match="gone"):
        make_provider().send_reply(reply(parent="404404"), NOW)


def test_private_replies_are_direct_and_never_wider_than_the_parent(fake: FakeMastodon, make_provider: Make) -> None:
    parent(fake, "701", "public")
    parent(fake, "702", "private")
    parent(fake, "703", "direct")
    provider = make_provider(reply_visibility="unlisted")
    provider.send_reply(reply(key="a", parent="701", direct=True), NOW)
    provider.send_reply(reply(key="b", parent="701"), NOW)
    provider.send_reply(reply(key="c", parent="702"), NOW)
    provider.send_reply(reply(key="d", parent="703"), NOW)
    assert [s["visibility"] for s in fake.posted] == ["direct", "unlisted", "private", "direct"]
    # A direct reply goes out without looking the parent up.
    assert [r.path for r in fake.requests if r.path.startswith("/api/v1/statuses")][0] == "/api/v1/statuses"


def test_send_errors_are_typed(fake: FakeMastodon, make_provider: Make) -> None:
    parent(fake)
    with pytest.raises(AuthRevoked):
        make_provider({"access_token": "nope"}).send_reply(reply(direct=True), NOW)
    fake.fail("/api/v1/statuses", 429, {"X-RateLimit-Reset": "2026-11-23T12:05:00.000Z"}, after=1)
    with pytest.raises(RateLimited) as raised:
        make_provider().send_reply(reply(), NOW)
    assert raised.value.retry_at == datetime(2026, 11, 23, 12, 5, tzinfo=UTC)
    fake.fail("/api/v1/statuses", 500)
    with pytest.raises(Transient):
        make_provider().send_reply(reply(direct=True), NOW)
    assert fake.posted == []


def test_send_times_out_as_transient(fake: FakeMastodon) -> None:
    from caredesk.connectors.builtin.mastodon import MastodonConfig

    parent(fake)
    with httpx.Client(timeout=10) as client:
        provider = MastodonProvider(MastodonConfig(instance="http://127.0.0.1:9"), {"access_token": TOKEN}, client)
        with pytest.raises(Transient, match="could not reach"):
            provider.send_reply(reply(direct=True), NOW)


def test_the_mention_is_added_only_when_missing() -> None:
    assert with_mention("thanks!", "carol@example.social") == "@carol@example.social thanks!"
    assert with_mention("Hi @Carol@example.social, thanks", "carol@example.social") == (
        "Hi @Carol@example.social, thanks")
    assert with_mention("@carol@example.socialite hi", "carol@example.social").startswith("@carol@example.social @")
    assert with_mention("mail carol@example.social", "carol@example.social").startswith("@carol")
    assert with_mention("hi", "") == "hi"


def test_find_reply_finds_the_published_status_or_says_none(fake: FakeMastodon, make_provider: Make) -> None:
    parent(fake)
    provider = make_provider()
    assert provider.find_reply(reply(), NOW) is None
    sent = provider.send_reply(reply("Fixed:\nsee https://status.example.com/incidents/42"), NOW)
    found = provider.find_reply(reply("Fixed:\nsee https://status.example.com/incidents/42"), NOW)
    assert found is not None and found.external_id == sent.external_id
    assert provider.find_reply(reply("a different text"), NOW) is None


def test_find_reply_cannot_tell_when_the_parent_is_gone_or_the_server_is_down(fake: FakeMastodon,
                                                                              make_provider: Make) -> None:
    provider = make_provider()
    provider.whoami()
    with pytest.raises(CannotTell, match="gone"):
        provider.find_reply(reply(parent="999"), NOW)
    parent(fake)
    fake.fail("/api/v1/statuses/700/context", 503)
    with pytest.raises(CannotTell):
        provider.find_reply(reply(), NOW)


def test_oauth_register_authorize_and_exchange(fake: FakeMastodon, http: httpx.Client) -> None:
    app = oauth.register_app(http, fake.url, client_name="caredesk", website="https://caredesk.example")
    assert app.client_id == "TWhM-tNSuncnqN7DBJmoyeLnk6K3iJJ71KKXxgL1hPM"
    [registration] = fake.requests_to("/api/v1/apps")
    assert registration.form == {"client_name": "caredesk", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
                                 "scopes": "read write", "website": "https://caredesk.example"}

    url = oauth.authorize_url(fake.url, app.client_id)
    parts = urlsplit(url)
    assert parts.path == "/oauth/authorize"
    assert parse_qs(parts.query) == {"response_type": ["code"], "client_id": [app.client_id],
                                     "redirect_uri": ["urn:ietf:wg:oauth:2.0:oob"], "scope": ["read write"]}

    credentials = oauth.exchange_code(http, fake.url, app, " the-code ")
    assert credentials.access_token.get_secret_value() == "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0"
    assert credentials.client_id == app.client_id
    [token_request] = fake.requests_to("/oauth/token")
    assert token_request.form["grant_type"] == "authorization_code" and token_request.form["code"] == "the-code"
    assert set(credentials.to_storage()) == {"access_token", "client_id", "client_secret"}

    with pytest.raises(AuthRevoked, match="invalid_grant"):
        oauth.exchange_code(http, fake.url, app, "wrong")


def test_a_pasted_token_works(fake: FakeMastodon, make_provider: Make) -> None:
    credentials = oauth.credentials_from_token(f"  Bearer {TOKEN}\n")
    provider = make_provider(credentials.to_storage())
    assert provider.whoami().handles == ("trwnh",)
    with pytest.raises(Refused):
        oauth.credentials_from_token("two words")
