"""Replies on the brand's PDS: record shape, facets at byte offsets, one post per idempotency key whatever
happens to the answers, and the platform's errors as typed errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bluesky_servers import BRAND_DID, TID_RE, PdsServer, ProviderFactory

from caredesk.connectors.base import (
    AuthRevoked,
    CannotTell,
    NormalizedAuthor,
    OutboundReply,
    RateLimited,
    Refused,
    Transient,
)
from caredesk.connectors.builtin.bluesky import facets, tid_from_key

CUSTOMER = "did:plc:customer1aaaaaaaaaaaaaaa"
ROOT = f"at://{BRAND_DID}/app.bsky.feed.post/3mmojbrjwbs26"


@pytest.fixture
def thread(pds: PdsServer) -> dict[str, str]:
    """The brand's post and a customer's reply to it, as the PDS knows them."""
    root = pds.pds.add_record(BRAND_DID, "3mmojbrjwbs26", {
        "$type": "app.bsky.feed.post", "text": "Our Lyon fibre network is back.", "createdAt": "2026-11-23T10:00:00Z"})
    pds.pds.records[(CUSTOMER, "app.bsky.feed.post", "3mmoqc2ment01")] = {
        "uri": f"at://{CUSTOMER}/app.bsky.feed.post/3mmoqc2ment01", "cid": "bafyreicustomerpostcid",
        "value": {"$type": "app.bsky.feed.post", "text": "Not for me, still down", "createdAt": "2026-11-23T11:50:00Z",
                  "reply": {"root": {"uri": root["uri"], "cid": root["cid"]},
                            "parent": {"uri": root["uri"], "cid": root["cid"]}}}}
    return {"root_cid": root["cid"], "parent": f"at://{CUSTOMER}/app.bsky.feed.post/3mmoqc2ment01"}


def reply_to(parent: str, text: str, key: str = "reply-1", direct: bool = False) -> OutboundReply:
    return OutboundReply(idempotency_key=key, text=text, in_reply_to_external_id=parent,
                         in_reply_to_author=NormalizedAuthor(external_id=CUSTOMER, handle="kim.bsky.social"),
                         is_direct=direct)


def brand_posts(pds: PdsServer) -> list[dict[str, object]]:
    return [r for r in pds.pds.posts_by(BRAND_DID) if r["uri"] != ROOT]


def test_reply_record_threads_under_the_root_with_byte_offset_facets(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    text = "@kim.bsky.social désolé 😔 — suivez https://status.acme.example.com/lyon."
    sent = make_provider(reply_langs=["fr"]).send_reply(reply_to(thread["parent"], text), now)
    rkey = tid_from_key("reply-1")
    assert TID_RE.match(rkey)
    assert sent.external_id == f"at://{BRAND_DID}/app.bsky.feed.post/{rkey}"
    assert sent.url == f"https://bsky.app/profile/{BRAND_DID}/post/{rkey}" and sent.created_at == now
    [stored] = brand_posts(pds)
    record = stored["value"]
    assert isinstance(record, dict)
    assert record["createdAt"] == "2026-11-23T12:00:00.000Z" and record["langs"] == ["fr"]
    assert record["reply"] == {"root": {"uri": ROOT, "cid": thread["root_cid"]},
                               "parent": {"uri": thread["parent"], "cid": "bafyreicustomerpostcid"}}
    raw = text.encode()
    mention, link = record["facets"]
    assert raw[mention["index"]["byteStart"]:mention["index"]["byteEnd"]] == b"@kim.bsky.social"
    assert mention["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": CUSTOMER}]
    # the link starts after "é", "😔" and "—" (2 + 4 + 3 bytes for 3 characters) and leaves the final "." out
    assert raw[link["index"]["byteStart"]:link["index"]["byteEnd"]] == b"https://status.acme.example.com/lyon"
    assert link["index"]["byteStart"] == len(text[: text.index("https")]) + 1 + 3 + 2 + 1  # é, 😔, — extra bytes


def test_a_reply_to_a_top_level_post_uses_it_as_root(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    make_provider().send_reply(reply_to(ROOT, "Thanks for the patience"), now)
    [stored] = brand_posts(pds)
    record = stored["value"]
    assert isinstance(record, dict)
    assert record["reply"]["root"] == record["reply"]["parent"] == {"uri": ROOT, "cid": thread["root_cid"]}
    assert "facets" not in record and "langs" not in record


def test_lost_answer_then_retry_publishes_exactly_once(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    provider = make_provider()
    reply = reply_to(thread["parent"], "We are looking into it")
    pds.pds.lose_answer.add("com.atproto.repo.createRecord")  # the PDS writes, the answer is lost (a crash)
    with pytest.raises(Transient):
        provider.send_reply(reply, now)
    assert len(brand_posts(pds)) == 1
    # a fresh process after the crash: find_reply sees it, and a blind resend gets the same post back
    again = make_provider()
    found = again.find_reply(reply, now + timedelta(minutes=5))
    sent = again.send_reply(reply, now + timedelta(minutes=5))
    assert found is not None and found.external_id == sent.external_id
    assert sent.created_at == now  # the record's own createdAt
    assert len(brand_posts(pds)) == 1 and pds.pds.calls["com.atproto.repo.createRecord"] == 2


def test_find_reply_is_none_for_a_reply_never_sent(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    assert make_provider().find_reply(reply_to(thread["parent"], "never sent", key="other"), now) is None


def test_an_idempotency_key_reused_for_other_text_is_refused(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    provider = make_provider()
    provider.send_reply(reply_to(thread["parent"], "first text"), now)
    with pytest.raises(Refused, match="already holds another post"):
        provider.send_reply(reply_to(thread["parent"], "second text"), now)
    assert len(brand_posts(pds)) == 1


def test_rate_limit_waits_for_ratelimit_reset(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    reset = int(now.timestamp()) + 120
    pds.pds.faults["com.atproto.repo.createRecord"] = [
        (429, {"ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
         {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"})]
    with pytest.raises(RateLimited) as caught:
        make_provider().send_reply(reply_to(thread["parent"], "hello"), now)
    assert caught.value.retry_at == datetime.fromtimestamp(reset, UTC)
    assert brand_posts(pds) == []


def test_a_5xx_storm_is_transient_and_the_retry_after_it_posts_once(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    pds.pds.faults["com.atproto.repo.createRecord"] = [
        (status, {}, {"error": "InternalServerError", "message": "Internal Server Error"})
        for status in (500, 502, 503, 504, 502)]
    provider = make_provider()
    reply = reply_to(thread["parent"], "hello")
    for _ in range(5):
        with pytest.raises(Transient):
            provider.send_reply(reply, now)
    provider.send_reply(reply, now)
    # a duplicate job: the PDS fails on the taken key with a 500, as @atproto/pds does; still one post, same answer
    assert provider.send_reply(reply, now).external_id.endswith(tid_from_key("reply-1"))
    assert len(brand_posts(pds)) == 1


def test_invalid_request_is_refused_with_the_platforms_message(
        make_provider: ProviderFactory, pds: PdsServer, thread: dict[str, str], now: datetime) -> None:
    pds.pds.faults["com.atproto.repo.createRecord"] = [
        (400, {}, {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record: Record/reply/parent "
                                                         "must be a strongRef"})]
    with pytest.raises(Refused, match="must be a strongRef"):
        make_provider().send_reply(reply_to(thread["parent"], "hello"), now)


def test_a_deleted_parent_is_refused(make_provider: ProviderFactory, pds: PdsServer, now: datetime) -> None:
    with pytest.raises(Refused, match="no longer on Bluesky"):
        make_provider().send_reply(reply_to(f"at://{CUSTOMER}/app.bsky.feed.post/3mmoqc2gone01", "hi"), now)


def test_reply_rules_count_graphemes_and_bytes(make_provider: ProviderFactory, pds: PdsServer,
                                               thread: dict[str, str], now: datetime) -> None:
    rules = make_provider().reply_rules()
    assert (rules.max_length, rules.unit, rules.max_bytes, rules.answers_unsummoned) == (300, "graphemes", 3000, True)
    assert rules.problem("👍🏽" * 300) is None  # 300 graphemes, 2,400 bytes
    assert rules.problem("a" * 301) == "too long: 301 graphemes, the limit is 300"
    family = "👨\u200d👩\u200d👧\u200d👦"  # one grapheme of 25 bytes
    assert rules.problem(family * 121) == "too long: 3025 bytes, the limit is 3000"
    assert rules.problem("hi", direct=True) is not None  # chat is off unless configured
    with pytest.raises(Refused, match="301 graphemes"):
        make_provider().send_reply(reply_to(thread["parent"], "e\u0301" * 301), now)
    assert pds.pds.calls["com.atproto.repo.createRecord"] == 0


def test_facets_ignore_a_did_placeholder_and_other_handles() -> None:
    assert facets("@did:plc:x hi", "did:plc:x", "did:plc:x") == []
    assert facets("@kim.bsky.socialite hi", "kim.bsky.social", CUSTOMER) == []
    assert [f["index"] for f in facets("ça @Kim.bsky.social!", "kim.bsky.social", CUSTOMER)] == [
        {"byteStart": 4, "byteEnd": 20}]


def test_direct_messages_go_through_the_chat_proxy(make_provider: ProviderFactory, pds: PdsServer,
                                                   now: datetime) -> None:
    provider = make_provider(direct_messages=True)
    sent = provider.send_reply(reply_to("", "@kim.bsky.social can you DM your account number?", direct=True), now)
    [message] = pds.pds.messages
    assert message["text"].startswith("@kim.bsky.social") and message["convoId"] == "convo-aaaaaa"
    assert message["facets"][0]["features"][0]["did"] == CUSTOMER
    assert sent.external_id == "chat:convo-aaaaaa:msg-1"
    assert sent.created_at == datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC)
    with pytest.raises(CannotTell):
        provider.find_reply(reply_to("", "x", direct=True), now)


def test_a_revoked_app_password_is_auth_revoked(make_provider: ProviderFactory, pds: PdsServer,
                                                thread: dict[str, str], now: datetime) -> None:
    provider = make_provider({"identifier": "acme.example.com", "app_password": "wrong-pass-word-here"})
    with pytest.raises(AuthRevoked, match="Invalid identifier or password"):
        provider.send_reply(reply_to(thread["parent"], "hello"), now)
    assert brand_posts(pds) == []
