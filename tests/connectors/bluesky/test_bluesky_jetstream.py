"""Listening on Jetstream: fixtures played by a local websocket server that honours the cursor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from bluesky_servers import (
    APP_PASSWORD,
    BRAND_DID,
    BRAND_HANDLE,
    FIXTURES,
    Jetstream,
    PdsServer,
    ProviderFactory,
    running_jetstream,
)

from caredesk.connectors.base import FetchResult, PostDeleted, PostEdited, Transient
from caredesk.connectors.builtin.bluesky import Listener
from caredesk.connectors.builtin.bluesky.richtext import byte_span
from caredesk.connectors.listening import ListeningRules

RULES = {"keywords": ["acme"], "exclude": ["anvils"], "languages": ["en"]}


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text(encoding="utf-8").splitlines()


def play(provider: Any, cursor: Mapping[str, Any]) -> tuple[list[FetchResult], Transient | None]:
    """Every batch of one connection, and the error that ended it (None: closed normally)."""

    async def go() -> tuple[list[FetchResult], Transient | None]:
        out: list[FetchResult] = []
        async with httpx.AsyncClient() as http:
            try:
                async for batch in provider.stream(cursor, http):
                    out.append(batch)
            except Transient as exc:
                return out, exc
        return out, None

    return asyncio.run(go())


def with_did(make: ProviderFactory, **config: Any) -> Any:
    return make({"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD, "did": BRAND_DID}, **config)


def test_brand_stream_keeps_the_brands_business_and_rejects_what_it_cannot_use(make_provider: ProviderFactory) -> None:
    jetstream = Jetstream.of(lines("brand_stream.jsonl"))
    with running_jetstream(jetstream) as url:
        batches, error = play(with_did(make_provider, jetstream=url, **RULES), {})
    assert error is None
    assert jetstream.requests[0] == {"wantedCollections": ["app.bsky.feed.post"]}  # no cursor: from now
    posts = [p for b in batches for p in b.posts]
    by_rkey = {p.external_id.rsplit("/", 1)[1]: p for p in posts}
    # the mention, the reply to the brand, the keyword match in English, the brand's own post, the #acme hashtag
    assert list(by_rkey) == ["3mmoojp4cd201", "3mmoojp4cd202", "3mmoojp4cd203", "3mmoojp4cd207", "3mmoojp4cd215"]
    mention, reply, keyword, own, future = by_rkey.values()
    assert mention.summoned and mention.text == "@acme.example.com my router is down again 📶😤"
    assert mention.external_id == "at://did:plc:customer1aaaaaaaaaaaaaaa/app.bsky.feed.post/3mmoojp4cd201"
    assert mention.author.external_id == mention.author.handle == "did:plc:customer1aaaaaaaaaaaaaaa"
    assert mention.url == "https://bsky.app/profile/did:plc:customer1aaaaaaaaaaaaaaa/post/3mmoojp4cd201"
    assert mention.created_at == datetime(2026, 5, 25, 14, 23, 28, 757000, tzinfo=UTC)
    assert mention.language == "en" and mention.conversation_external_id == mention.external_id
    assert reply.summoned and reply.matched_keywords == ()
    assert reply.in_reply_to_external_id == f"at://{BRAND_DID}/app.bsky.feed.post/3mmojbrjwbs26"
    assert reply.conversation_external_id == reply.in_reply_to_external_id
    assert not keyword.summoned and keyword.matched_keywords == ("acme",)
    assert own.author.external_id == BRAND_DID and own.author.handle == BRAND_HANDLE and not own.summoned
    # a createdAt in 2099 is not believed: the post is dated when Jetstream saw it
    assert future.created_at == datetime.fromtimestamp(1779719009015000 / 1e6, UTC)
    changes = [c for b in batches for c in b.changes]
    assert [type(c) for c in changes] == [PostEdited, PostDeleted]
    assert isinstance(changes[0], PostEdited) and changes[0].post.text.endswith("(edited: it is back)")
    assert changes[1] == PostDeleted("at://did:plc:customer1aaaaaaaaaaaaaaa/app.bsky.feed.post/3mmoojp4cd201")
    rejected = [r for b in batches for r in b.rejected]
    assert [r.position for r in rejected] == [11, 12, 13]
    assert "not JSON" in rejected[0].reason and rejected[0].raw == "NOT JSON {"
    assert "without a record" in rejected[1].reason
    assert "surrogate" in rejected[2].reason
    assert batches[-1].cursor["time_us"] == 1779719009015000  # the last event's time_us


def test_real_jetstream_lines_parse_and_are_not_the_brands(make_provider: ProviderFactory) -> None:
    real = lines("golden_v1.jsonl") + lines("expected_v1_posts.jsonl")
    jetstream = Jetstream.of(real)
    with running_jetstream(jetstream) as url:
        batches, error = play(with_did(make_provider, jetstream=url, keywords=["acme"]), {})
    assert error is None
    assert [p for b in batches for p in b.posts] == [] and [r for b in batches for r in b.rejected] == []
    deleted = [c for b in batches for c in b.changes]
    assert all(isinstance(c, PostDeleted) for c in deleted) and len(deleted) == 1


def test_real_lines_fields_reply_and_facet_byte_offsets() -> None:
    golden = lines("golden_v1.jsonl")
    # the golden reply answers a post of did:plc:j76trmiofvaxxpvx2vnb2vwf: to that account it is summoned
    listener = Listener("did:plc:j76trmiofvaxxpvx2vnb2vwf", ListeningRules())
    got = listener.classify(golden[1])
    assert got is not None and got.post is not None
    assert got.post.summoned and got.post.text == "Try RSV for a good time !!"
    assert got.post.in_reply_to_external_id == "at://did:plc:j76trmiofvaxxpvx2vnb2vwf/app.bsky.feed.post/3mmojbrjwbs26"
    assert [listener.classify(line) for line in golden[2:]] == [None] * 8  # likes, follows, identity, ...
    # our byte offsets agree with a real client's facet over text with emoji and non-ASCII
    for line in lines("expected_v1_posts.jsonl"):
        record = json.loads(line)["commit"].get("record", {})
        for facet in record.get("facets", []):
            feature = facet["features"][0]
            if feature["$type"] != "app.bsky.richtext.facet#tag":
                continue
            text = record["text"]
            start = text.index("#" + feature["tag"])
            assert byte_span(text, start, start + 1 + len(feature["tag"])) == {
                "byteStart": facet["index"]["byteStart"], "byteEnd": facet["index"]["byteEnd"]}


def many(count: int, spacing_us: int = 10_000) -> list[str]:
    base = 1779719009000000
    return [json.dumps({"did": f"did:plc:customer{i:017d}", "time_us": base + i * spacing_us, "kind": "commit",
                        "commit": {"rev": f"3mmoojp{i:06d}", "operation": "create", "collection": "app.bsky.feed.post",
                                   "rkey": f"3mmoojp4{i:05d}", "cid": f"bafyrei{i:052d}",
                                   "record": {"$type": "app.bsky.feed.post", "createdAt": "2026-05-25T14:23:28.757Z",
                                              "langs": ["en"], "text": f"acme outage report number {i}"}}})
            for i in range(count)]


def test_drop_and_resume_loses_nothing_and_repeats_nothing(make_provider: ProviderFactory) -> None:
    # 1,200 events 10 ms apart; the connection drops after 400 lines, and the next one after 900: each reconnection
    # rewinds 5 s (500 events), so the server sends hundreds of events again and the provider must drop them.
    jetstream = Jetstream.of(many(1200), drop_after=[400, 900])
    delivered: list[str] = []
    cursor: Mapping[str, Any] = {}
    drops = 0
    with running_jetstream(jetstream) as url:
        provider = with_did(make_provider, jetstream=url, keywords=["acme"])
        for _ in range(5):
            batches, error = play(provider, cursor)
            for batch in batches:
                delivered += [p.external_id for p in batch.posts]
                cursor = batch.cursor  # what the runtime saves once the batch is stored
            if error is None:
                break
            drops += 1
    assert drops == 2
    expected = [f"at://did:plc:customer{i:017d}/app.bsky.feed.post/3mmoojp4{i:05d}" for i in range(1200)]
    assert delivered == expected
    resumed = [int(q["cursor"][0]) for q in jetstream.requests[1:]]
    assert resumed == [1779719009000000 + 399 * 10_000 - 5_000_000, 1779719009000000 + 899 * 10_000 - 5_000_000]
    assert sum(jetstream.sent) > 0


def test_stream_resolves_the_brands_handle_without_logging_in(make_provider: ProviderFactory, pds: PdsServer) -> None:
    jetstream = Jetstream.of(lines("brand_stream.jsonl")[:3])
    with running_jetstream(jetstream) as url:
        batches, error = play(make_provider(jetstream=url, **RULES), {})
    assert error is None
    assert pds.pds.calls["com.atproto.identity.resolveHandle"] == 1
    assert pds.pds.calls["com.atproto.server.createSession"] == 0  # sessions are rate limited: none spent here
    assert [p.summoned for b in batches for p in b.posts] == [True, True, False]


def test_unreachable_jetstream_is_transient(make_provider: ProviderFactory) -> None:
    with running_jetstream(Jetstream()) as url:
        dead = url.replace("/subscribe", "")  # the server closes anything but /subscribe
    _, error = play(with_did(make_provider, jetstream=dead), {})
    assert error is not None and "Jetstream" in str(error)


def test_a_quote_of_the_brands_post_is_summoned() -> None:
    line = json.loads(lines("brand_stream.jsonl")[5])  # an unrelated post
    brand_post = {"uri": f"at://{BRAND_DID}/app.bsky.feed.post/3mmojbrjwbs26", "cid": "bafyreiainko5un5pbcdos"}
    listener = Listener(BRAND_DID, ListeningRules(keywords=("acme",)))
    for embed in ({"$type": "app.bsky.embed.record", "record": brand_post},
                  {"$type": "app.bsky.embed.recordWithMedia", "record": {"record": brand_post}, "media": {}}):
        line["commit"]["record"]["embed"] = embed
        got = listener.classify(json.dumps(line))
        assert got is not None and got.post is not None and got.post.summoned
    line["commit"]["record"]["embed"] = {"$type": "app.bsky.embed.record", "record": {"uri": "at://did:plc:x/a/b"}}
    got = listener.classify(json.dumps(line))
    assert got is not None and got.post is None and got.change is None


def test_authors_get_their_handles_from_the_appview_and_keep_their_did_when_it_fails(
        make_provider: ProviderFactory, pds: PdsServer) -> None:
    pds.pds.profiles["did:plc:customer1aaaaaaaaaaaaaaa"] = {
        "did": "did:plc:customer1aaaaaaaaaaaaaaa", "handle": "kim.bsky.social", "displayName": "Kim 🌸",
        "followersCount": 42, "avatar": "https://cdn.bsky.app/img/avatar/plain/x", "labels": []}
    pds.pds.profiles["did:plc:customer2aaaaaaaaaaaaaaa"] = {
        "did": "did:plc:customer2aaaaaaaaaaaaaaa", "handle": "handle.invalid"}  # a handle that no longer resolves
    jetstream = Jetstream.of(lines("brand_stream.jsonl")[:3])
    with running_jetstream(jetstream) as url:
        batches, _ = play(with_did(make_provider, jetstream=url, **RULES), {})
    authors = [p.author for b in batches for p in b.posts]
    assert (authors[0].handle, authors[0].name, authors[0].followers) == ("kim.bsky.social", "Kim 🌸", 42)
    assert authors[1].handle == "did:plc:customer2aaaaaaaaaaaaaaa"
    assert authors[2].handle == "did:plc:customer3aaaaaaaaaaaaaaa"  # unknown to the appview
    pds.pds.faults["app.bsky.actor.getProfiles"] = [(502, {}, {"error": "UpstreamFailure", "message": "down"})]
    jetstream = Jetstream.of(lines("brand_stream.jsonl")[:3])
    with running_jetstream(jetstream) as url:
        batches, error = play(with_did(make_provider, jetstream=url, **RULES), {})
    assert error is None
    assert [p.author.handle for b in batches for p in b.posts] == [
        "did:plc:customer1aaaaaaaaaaaaaaa", "did:plc:customer2aaaaaaaaaaaaaaa", "did:plc:customer3aaaaaaaaaaaaaaa"]
