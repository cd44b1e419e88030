"""Sessions (app-password login, refresh, revocation), whoami, and polling notifications."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest
from bluesky_servers import APP_PASSWORD, BRAND_DID, BRAND_HANDLE, FIXTURES, PdsServer, ProviderFactory

from caredesk.connectors.base import AuthRevoked, Identity, RateLimited, Transient
from caredesk.connectors.builtin.bluesky import BlueskyProvider

NOTIFICATIONS = json.loads((FIXTURES / "notifications.json").read_text(encoding="utf-8"))["notifications"]


def test_whoami_logs_in_with_the_app_password(make_provider: ProviderFactory, pds: PdsServer) -> None:
    assert make_provider().whoami() == Identity(account_ids=(BRAND_DID,), handles=(BRAND_HANDLE,))
    assert pds.pds.calls["com.atproto.server.createSession"] == 1


def test_a_wrong_app_password_is_auth_revoked(make_provider: ProviderFactory, pds: PdsServer) -> None:
    with pytest.raises(AuthRevoked, match="Invalid identifier or password"):
        make_provider({"identifier": BRAND_HANDLE, "app_password": "nope-nope-nope-nope"}).whoami()


def test_an_expired_token_is_refreshed_and_the_rotated_tokens_handed_over(
        make_provider: ProviderFactory, pds: PdsServer, now: datetime) -> None:
    tokens = pds.pds.new_tokens()
    pds.pds.expire_all()
    stored = {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD, "did": BRAND_DID,
              "access_jwt": tokens["accessJwt"], "refresh_jwt": tokens["refreshJwt"]}
    result = make_provider(stored).fetch({}, now)
    assert pds.pds.calls["com.atproto.server.refreshSession"] == 1
    assert pds.pds.calls["com.atproto.server.createSession"] == 0
    assert result.credentials is not None
    assert result.credentials["access_jwt"] != tokens["accessJwt"] and result.credentials["did"] == BRAND_DID
    # what the runtime stores parses back into the credentials model, secrets hidden
    parsed = BlueskyProvider.parse_credentials(result.credentials)
    assert result.credentials["refresh_jwt"] not in repr(parsed)


def test_a_used_up_refresh_token_falls_back_to_the_app_password(
        make_provider: ProviderFactory, pds: PdsServer, now: datetime) -> None:
    tokens = pds.pds.new_tokens()
    pds.pds.expire_all()
    pds.pds.refresh.clear()
    stored = {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD, "did": BRAND_DID,
              "access_jwt": tokens["accessJwt"], "refresh_jwt": tokens["refreshJwt"]}
    result = make_provider(stored).fetch({}, now)
    assert pds.pds.calls["com.atproto.server.createSession"] == 1 and result.credentials is not None


def test_a_revoked_session_and_password_is_auth_revoked(make_provider: ProviderFactory, pds: PdsServer,
                                                         now: datetime) -> None:
    stored = {"identifier": BRAND_HANDLE, "app_password": "revoked-app-pass-word", "did": BRAND_DID,
              "access_jwt": "signed-out-elsewhere", "refresh_jwt": "gone"}
    with pytest.raises(AuthRevoked):
        make_provider(stored).fetch({}, now)


def test_polling_hands_out_mentions_replies_and_quotes_once(make_provider: ProviderFactory, pds: PdsServer,
                                                            now: datetime) -> None:
    pds.pds.notifications = copy.deepcopy(NOTIFICATIONS)
    provider = make_provider(keywords=["router"])
    first = provider.fetch({}, now)
    assert [p.external_id.rsplit("/", 1)[1] for p in first.posts] == ["3mmoqc2ment01", "3mmoqc2reply1",
                                                                      "3mmoqc2quote1"]  # oldest first; no like
    mention, reply, quote = first.posts
    assert mention.author.handle == "kim.bsky.social" and mention.author.name == "Kim 🌸"
    assert mention.summoned and mention.matched_keywords == ("router",)
    assert reply.in_reply_to_external_id.endswith("/3mmojbrjwbs26") and reply.language == "en"
    assert quote.language == "fr" and quote.text.startswith("Ils disent")
    assert first.cursor == {"seen_at": "2026-11-23T11:58:01.120Z", "seen": [quote.external_id]}
    assert first.rejected == ()
    again = provider.fetch(first.cursor, now)
    assert again.posts == () and again.cursor == first.cursor
    newer = copy.deepcopy(NOTIFICATIONS[3])
    newer.update(uri="at://did:plc:customer1aaaaaaaaaaaaaaa/app.bsky.feed.post/3mmoqc2ment02",
                 indexedAt="2026-11-23T12:01:00.000Z")
    pds.pds.notifications.insert(0, newer)
    third = provider.fetch(again.cursor, now)
    assert [p.external_id for p in third.posts] == [newer["uri"]]


def test_polling_pages_back_to_the_cursor(make_provider: ProviderFactory, pds: PdsServer, now: datetime) -> None:
    base = NOTIFICATIONS[3]
    items = []
    for i in range(250):  # newest first, one a second
        item = copy.deepcopy(base)
        item.update(uri=f"at://did:plc:customer1aaaaaaaaaaaaaaa/app.bsky.feed.post/3mmoqd{i:07d}",
                    indexedAt=f"2026-11-23T11:{59 - i // 60:02d}:{59 - i % 60:02d}.000Z")
        items.append(item)
    pds.pds.notifications = items
    cursor = {"seen_at": items[240]["indexedAt"], "seen": [items[240]["uri"]]}
    result = make_provider().fetch(cursor, now)
    assert [p.external_id for p in result.posts] == [i["uri"] for i in reversed(items[:240])]
    assert pds.pds.calls["app.bsky.notification.listNotifications"] == 3


def test_polling_rejects_a_malformed_notification_and_keeps_the_rest(
        make_provider: ProviderFactory, pds: PdsServer, now: datetime) -> None:
    broken = copy.deepcopy(NOTIFICATIONS[1])
    broken["record"]["text"] = "lone \ud83d surrogate"
    quote = copy.deepcopy(NOTIFICATIONS[0])
    del quote["cid"]  # a missing cid is harmless
    pds.pds.notifications = [quote, broken]
    result = make_provider().fetch({}, now)
    assert [p.text[:10] for p in result.posts] == ["Ils disent"]
    assert len(result.rejected) == 1 and "surrogate" in result.rejected[0].reason


def test_polling_errors_are_typed(make_provider: ProviderFactory, pds: PdsServer, now: datetime) -> None:
    pds.pds.faults["app.bsky.notification.listNotifications"] = [
        (429, {"retry-after": "30"}, {"error": "RateLimitExceeded", "message": "slow down"}),
        (502, {}, {"error": "UpstreamFailure", "message": "upstream"}),
    ]
    provider = make_provider()
    with pytest.raises(RateLimited) as caught:
        provider.fetch({}, now)
    assert (caught.value.retry_at - now).total_seconds() == 30
    with pytest.raises(Transient):
        provider.fetch({}, now)


def test_credentials_still_wrapped_in_secretstr_work(pds: PdsServer) -> None:
    import httpx

    wrapped = BlueskyProvider.parse_credentials({"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD}).model_dump()
    config = BlueskyProvider.parse_config({"service": pds.url})
    with httpx.Client() as http:
        provider = BlueskyProvider(config, wrapped, http)  # type: ignore[arg-type]
        assert provider.whoami().account_ids == (BRAND_DID,)


def test_config_refuses_plain_http_beyond_loopback_and_bad_rules() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="only allowed to 127.0.0.1"):
        BlueskyProvider.parse_config({"service": "http://pds.example.com"})
    with pytest.raises(ValidationError, match="wss://"):
        BlueskyProvider.parse_config({"jetstream": "https://jetstream.example.com/subscribe"})
    with pytest.raises(ValidationError):
        BlueskyProvider.parse_config({"hashtags": ["not a tag"]})
    config = BlueskyProvider.parse_config({"handle": "@Acme.Example.com", "service": "https://pds.example.com/"})
    assert config.handle == "acme.example.com" and config.service == "https://pds.example.com"  # type: ignore[attr-defined]
