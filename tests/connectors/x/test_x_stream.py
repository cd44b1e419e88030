"""The X streams against the fake server: the Activity API stream after a catch-up through the mentions timeline,
``\\r\\n`` keep-alives, unparsable and cut-off lines, disconnects, 429/401/403, the subscriptions, and the
filtered stream with its rules, merged with the activity stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fake_x import BEARER, OUR_ID, FakeX, fixture, line, tweet, user

from caredesk.connectors.base import AuthRevoked, FetchResult, RateLimited, Refused
from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.builtin.x.rules import tag_prefix
from caredesk.connectors.costs.prices import Operation

Make = Callable[..., XProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ACTIVITY = "/2/activity/stream"
FILTERED = "/2/tweets/search/stream"


def streaming(make_provider: Make, **config: Any) -> XProvider:
    from fake_x import ACCESS, CLIENT_ID, REFRESH

    return make_provider({"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID,
                          "bearer_token": BEARER}, user_id=OUR_ID, **config)


def collect(provider: XProvider, cursor: dict[str, Any] | None = None, *, batches: int = 100,
            timeout: float = 10.0) -> list[FetchResult]:
    """The batches of one connection, until it ends (or ``batches`` came)."""

    async def run() -> list[FetchResult]:
        got: list[FetchResult] = []
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
            iterator = provider.stream(cursor or {}, http)
            try:
                async with asyncio.timeout(timeout):
                    async for batch in iterator:
                        got.append(batch)
                        if len(got) >= batches:
                            break
            finally:
                await iterator.aclose()  # type: ignore[attr-defined]
        return got

    return asyncio.run(run())


def event(name: str, **payload: Any) -> dict[str, Any]:
    body = fixture(f"activity_{name}.json")
    body["data"]["filter"]["user_id"] = OUR_ID
    body["data"]["payload"].update(payload)
    return body


def posts(results: list[FetchResult]) -> list[str]:
    return [p.external_id for r in results for p in r.posts]


def test_catch_up_first_then_the_stream_with_keep_alives_and_a_disconnect(make_provider: Make,
                                                                           fake: FakeX) -> None:
    fake.state.mentions = [tweet("900", "@TwitterDev missed while away"), tweet("800", "@TwitterDev older")]
    fake.state.streams[ACTIVITY] = [[
        b"\r\n", b"\r\n",
        line(event("post_mention_create", id="950", edit_history_tweet_ids=["950"])),
        b"\r\n",
        line(event("post_mention_create", id="900", edit_history_tweet_ids=["900"])),  # the catch-up had it
        b"this is not json\r\n",
        line(event("post_reply_create", id="960", edit_history_tweet_ids=["960"]))[:40],  # cut off: a disconnect
    ]]
    results = collect(streaming(make_provider), {"since_id": "850"})
    assert posts(results) == ["900", "950"]
    catch_up, *live = results
    assert catch_up.cursor == {"since_id": "900"}
    assert [u.operation for u in catch_up.usage] == [Operation.OWNED_READ]
    assert live[-1].cursor == {"since_id": "950"}
    reasons = [r.reason for batch in live for r in batch.rejected]
    assert any("not JSON" in r for r in reasons) and any("cut off by the disconnect" in r for r in reasons)
    assert [r.raw for batch in live for r in batch.rejected][0] == "this is not json"
    stream_request = fake.requests_to("GET", ACTIVITY)[0]
    assert stream_request.headers["authorization"] == f"Bearer {BEARER}"
    assert fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions")[0].query["since_id"] == "850"


def test_the_stream_creates_the_missing_subscriptions_once(make_provider: Make, fake: FakeX) -> None:
    fake.state.subscriptions = [{"subscription_id": "1", "event_type": "post.mention.create",
                                 "filter": {"user_id": OUR_ID}}]
    fake.state.streams[ACTIVITY] = [[b"\r\n"], [b"\r\n"]]
    provider = streaming(make_provider)
    collect(provider)
    kinds = sorted(s["event_type"] for s in fake.state.subscriptions)
    assert kinds == ["dm.received", "post.mention.create", "post.quote.create", "post.reply.create"]
    assert all(s["filter"] == {"user_id": OUR_ID} for s in fake.state.subscriptions)
    collect(provider)
    assert len(fake.state.subscriptions) == 4  # listed first: nothing made twice
    assert provider.ensure_subscriptions(NOW) == []


def test_dms_and_unknown_events_on_the_stream(make_provider: Make, fake: FakeX) -> None:
    dm = fixture("activity_dm_received.json")
    dm["data"]["payload"]["direct_message_events"][0]["message_create"]["target"]["recipient_id"] = OUR_ID
    fake.state.streams[ACTIVITY] = [[line(fixture("activity_like_create.json")), line(dm)]]
    provider = streaming(make_provider)
    results = collect(provider)
    (message,) = [p for r in results for p in r.posts]
    assert message.is_direct and message.conversation_external_id == f"dm:{OUR_ID}-2222222222222222222"
    assert provider.ignored_events == 1
    assert [u.operation for r in results for u in r.usage] == [Operation.DM_EVENT_READ]


def test_429_on_the_stream_is_rate_limited_until_the_reset(make_provider: Make, fake: FakeX) -> None:
    fake.fail("GET", ACTIVITY, 429, fixture("too_many_requests.json"), headers={"x-rate-limit-reset": "1900000000"})
    with pytest.raises(RateLimited) as caught:
        collect(streaming(make_provider))
    assert caught.value.retry_at == datetime.fromtimestamp(1900000000, UTC)


def test_an_app_not_enrolled_is_refused_so_the_ladder_can_fall_to_polling(make_provider: Make,
                                                                          fake: FakeX) -> None:
    fake.fail("GET", ACTIVITY, 403, fixture("client_not_enrolled.json"))
    with pytest.raises(Refused, match="developer App that is attached to a Project"):
        collect(streaming(make_provider))


def test_a_refused_bearer_token_is_auth_revoked(make_provider: Make, fake: FakeX) -> None:
    fake.fail("GET", ACTIVITY, 401, fixture("unauthorized.json"))
    with pytest.raises(AuthRevoked, match="bearer token"):
        collect(streaming(make_provider))


def test_no_bearer_token_no_stream(make_provider: Make) -> None:
    with pytest.raises(Refused, match="bearer token"):
        collect(make_provider(user_id=OUR_ID))


def test_filtered_stream_rules_are_ours_only_and_kept_in_step(make_provider: Make, fake: FakeX) -> None:
    stranger = {"id": "1", "value": "cats", "tag": "someone else"}
    old = {"id": "2", "value": "(oldword) -is:retweet", "tag": f"{tag_prefix(OUR_ID)}old"}
    other_brand = {"id": "3", "value": "(x) -is:retweet", "tag": f"{tag_prefix('42')}abc"}
    fake.state.rules = [stranger, old, other_brand]
    provider = streaming(make_provider, keywords=["router", "no signal"], hashtags=["acmefail"],
                         exclude=["orange juice"])
    sync = provider.ensure_rules(NOW)
    assert sync.deleted == ("2",)
    (value,) = sync.added
    assert value == f'(router OR "no signal" OR #acmefail) -is:retweet -from:{OUR_ID} -"orange juice"'
    assert [r["id"] for r in fake.state.rules[:2]] == ["1", "3"]
    again = provider.ensure_rules(NOW)
    assert again.added == () and again.deleted == () and again.kept == 1
    assert len(fake.requests_to("POST", "/2/tweets/search/stream/rules")) == 2  # the delete and the add


def test_rules_respect_the_length_and_count_limits(make_provider: Make, fake: FakeX) -> None:
    words = [f"keyword{n:03d}" for n in range(200)]
    provider = streaming(make_provider, keywords=words)
    sync = provider.ensure_rules(NOW)
    assert len(sync.added) > 1 and all(len(v) <= 512 for v in sync.added)
    covered = " ".join(sync.added)
    assert all(w in covered for w in words)
    fake.state.rules = [{"id": str(n), "value": f"v{n}", "tag": "theirs"} for n in range(999)]
    with pytest.raises(Refused, match="1000 filtered-stream rules"):
        streaming(make_provider, keywords=words).ensure_rules(NOW)


def test_keyword_matches_are_unsummoned_and_merged_with_the_activity_stream(make_provider: Make,
                                                                           fake: FakeX) -> None:
    fake.state.users["77"] = user("77", "grumpy")
    prefix = tag_prefix(OUR_ID)
    match = fixture("filtered_stream_line.json")
    match["data"].update(id="970", text="my router is down again", author_id="77", edit_history_tweet_ids=["970"])
    match["includes"]["users"] = [fake.state.users["77"]]
    match["matching_rules"] = [{"id": "5", "tag": f"{prefix}abc"}]
    addressed = json.loads(json.dumps(match))
    addressed["data"].update(id="971", text="@TwitterDev router down", entities={"mentions": [
        {"start": 0, "end": 11, "username": "TwitterDev", "id": OUR_ID}]})
    foreign = json.loads(json.dumps(match))
    foreign["data"]["id"] = "972"
    foreign["matching_rules"] = [{"id": "9", "tag": "someone else's rule"}]
    edited = json.loads(json.dumps(match))
    edited["data"].update(id="973", text="my router is down again (edit)", edit_history_tweet_ids=["970", "973"])
    fake.state.streams[FILTERED] = [[b"\r\n", line(match), line(addressed), line(foreign), line(edited), b"{oops\r\n",
                                     0.3]]
    fake.state.streams[ACTIVITY] = [[line(event("post_quote_create", id="980", edit_history_tweet_ids=["980"])),
                                     60.0]]
    provider = streaming(make_provider, keywords=["router"])
    results = collect(provider, timeout=5.0)  # the activity stream stays open: only the merge's end stops it
    got = {p.external_id: p for r in results for p in r.posts}
    assert set(got) == {"970", "971", "980"}
    assert got["970"].summoned is False and got["970"].matched_keywords == ("router",)
    assert got["971"].summoned is True
    assert got["980"].summoned is True
    (change,) = [c for r in results for c in r.changes]
    assert change.post.external_id == "970" and change.post.text.endswith("(edit)")  # type: ignore[union-attr]
    assert any("not JSON" in rej.reason for r in results for rej in r.rejected)
    assert provider.ignored_events == 1
    # The filtered stream ended first (0.3 s): the whole connection ended, for the runtime to reconnect both.
    assert fake.state.rules and fake.state.rules[0]["tag"].startswith(prefix)
    read = [u for r in results for u in r.usage if u.operation == Operation.POST_READ]
    # Every post delivered is billed, another rule's match too (X charges the app for what it sends).
    assert sorted(i for u in read for i in u.resource_ids) == ["970", "971", "972", "973", "980"]


def test_a_token_renewed_at_connection_is_handed_out_first(make_provider: Make, fake: FakeX) -> None:
    fake.state.access_tokens = {"someone-else"}  # ours expired: the subscriptions' listing renews it
    fake.state.streams[ACTIVITY] = [[b"\r\n"]]
    first, *_ = collect(streaming(make_provider))
    assert first.posts == [] and first.credentials is not None
    assert first.credentials["refresh_token"] == "refresh-1" and first.credentials["bearer_token"] == BEARER


def test_lines_are_split_here_and_none_is_dropped_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    from caredesk.connectors.builtin.x import stream as module

    monkeypatch.setattr(module, "MAX_LINE", 50)

    async def chunks() -> Any:
        for chunk in (b'{"a":', b' 1}\r\n\r\n', b"\r\n", b'{"b": 2}\n', b"\xff\xfe\r\n", b"x" * 60, b"y" * 10,
                      b'\r\n{"c": 3}\r\n', b'{"cut'):
            yield chunk

    async def read() -> list[Any]:
        return [item async for item in module.lines(chunks(), "activity")]

    got = asyncio.run(read())
    assert [(item.text, item.problem.split(" (")[0]) for item in got] == [
        ('{"a": 1}', ""), ('{"b": 2}', ""),
        ("", "a line of the activity stream that is not UTF-8"),
        ("", "a line of the activity stream longer than 50 bytes"),
        ('{"c": 3}', ""),
        ("", "a line of the activity stream cut off by the disconnect"),
    ]
    assert got[2].raw == b"\xff\xfe" and got[-1].raw == b'{"cut'


def _match(tweet_id: str, text: str, tag: str) -> dict[str, Any]:
    body = fixture("filtered_stream_line.json")
    body["data"].update(id=tweet_id, text=text, author_id="77", edit_history_tweet_ids=[tweet_id])
    body["includes"]["users"] = [user("77", "grumpy")]
    body["matching_rules"] = [{"id": "5", "tag": tag}]
    return body


def test_keyword_matches_between_two_connections_are_caught_up_through_recent_search(make_provider: Make,
                                                                                    fake: FakeX) -> None:
    from caredesk.connectors.builtin.x.search import build_queries, query_key

    fake.state.users["77"] = user("77", "grumpy")
    provider = streaming(make_provider, keywords=["router"])
    key = query_key(build_queries(provider.config, OUR_ID, 512)[0])
    fake.state.search = [tweet("690", "router seen before"), tweet("710", "router broken while nobody listened",
                                                                  author_id="77")]
    fake.state.streams[FILTERED] = [[line(_match("990", "router down", f"{tag_prefix(OUR_ID)}{key}")), 0.3],
                                    [0.3]]
    fake.state.streams[ACTIVITY] = [[60.0], [60.0]]
    results = collect(provider, {"since_id": "850", "search": {key: {"since_id": "700"}}}, timeout=5.0)
    catch_up, *live = results
    assert posts([catch_up]) == ["710"] and catch_up.posts[0].summoned is False
    assert catch_up.cursor["search"] == {key: {"since_id": "710"}}
    assert [(u.operation, u.resource_ids) for u in catch_up.usage] == [(Operation.POST_READ, ("710",))]
    (request,) = fake.requests_to("GET", "/2/tweets/search/recent")
    assert request.query["since_id"] == "700"
    assert posts(live) == ["990"]
    assert live[-1].cursor["search"] == {key: {"since_id": "990"}}  # the stream moved the search on
    # The next connection catches up from the newest match the stream delivered, not from before it.
    collect(provider, dict(live[-1].cursor), timeout=5.0)
    assert fake.requests_to("GET", "/2/tweets/search/recent")[-1].query["since_id"] == "990"


def test_a_search_failure_at_connection_keeps_the_stream_going_with_a_warning(make_provider: Make,
                                                                           fake: FakeX) -> None:
    fake.fail("GET", "/2/tweets/search/recent", 503, {"title": "Service Unavailable"})
    fake.state.streams[FILTERED] = [[0.3]]
    fake.state.streams[ACTIVITY] = [[line(event("post_mention_create", id="950", edit_history_tweet_ids=["950"])),
                                     60.0]]
    results = collect(streaming(make_provider, keywords=["router"]), {"since_id": "850"}, timeout=5.0)
    catch_up, *live = results
    assert "recent search" in catch_up.warnings[0] and "search" not in catch_up.cursor
    assert posts(live) == ["950"]


def test_authors_of_replies_and_quotes_are_looked_up_once_in_one_batch(make_provider: Make, fake: FakeX) -> None:
    fake.state.users["2222222222222222222"] = user("2222222222222222222", "replier")
    fake.state.users["3333"] = user("3333", "quoter")
    fake.state.mentions = [tweet("900", "@TwitterDev hi", author_id="4444")]
    fake.state.users["4444"] = user("4444", "mentioner")
    reply = event("post_reply_create", id="960", edit_history_tweet_ids=["960"])
    quote = event("post_quote_create", id="961", author_id="3333", edit_history_tweet_ids=["961"])
    again = event("post_reply_create", id="962", edit_history_tweet_ids=["962"])
    from_mentioner = event("post_reply_create", id="963", author_id="4444", edit_history_tweet_ids=["963"])
    ghost = event("post_reply_create", id="964", author_id="5555", edit_history_tweet_ids=["964"])
    edit = event("post_quote_create", id="966", author_id="3333", edit_history_tweet_ids=["965", "966"])
    # One write: the three events come in one batch, so one look-up asks for their authors.
    fake.state.streams[ACTIVITY] = [[line(reply) + line(quote) + line(ghost) + line(edit), 0.3,
                                     line(again) + line(from_mentioner),
                                     0.3]]
    provider = streaming(make_provider)
    results = collect(provider, {"since_id": "850"})
    got = {p.external_id: p for r in results for p in r.posts}
    assert got["960"].author.handle == "replier" and got["960"].url == "https://x.com/replier/status/960"
    assert got["961"].author.handle == "quoter" and got["961"].author.followers == 1539
    assert got["962"].author.handle == "replier"  # known from the first look-up: not asked again
    assert got["963"].author.handle == "mentioner"  # known from the catch-up's includes
    assert got["964"].author.handle == "5555"  # X has no such user: the id stays
    (change,) = [c.post for r in results for c in r.changes]  # type: ignore[union-attr]
    assert change.external_id == "965" and change.author.handle == "quoter"  # an edit's author too
    lookups = fake.requests_to("GET", "/2/users")
    assert len(lookups) == 1
    assert sorted(lookups[0].query["ids"].split(",")) == ["2222222222222222222", "3333", "5555"]
    assert lookups[0].query["user.fields"] == "username,name,public_metrics,verified"
    users_read = [u for r in results for u in r.usage if u.operation == Operation.USER_READ]
    assert [sorted(u.resource_ids) for u in users_read] == [["2222222222222222222", "3333"]]


def test_a_failed_author_look_up_keeps_the_posts_under_their_ids(make_provider: Make, fake: FakeX) -> None:
    fake.fail("GET", "/2/users", 429, fixture("too_many_requests.json"), headers={"x-rate-limit-reset": "1900000000"})
    fake.state.streams[ACTIVITY] = [[line(event("post_reply_create", id="960", edit_history_tweet_ids=["960"])),
                                     0.3, line(event("post_reply_create", id="962", edit_history_tweet_ids=["962"]))]]
    provider = streaming(make_provider)
    results = collect(provider)
    assert [p.author.handle for r in results for p in r.posts] == ["2222222222222222222"] * 2
    assert len(fake.requests_to("GET", "/2/users")) == 1  # paused until X's reset, not asked for each batch
    assert not [u for r in results for u in r.usage if u.operation == Operation.USER_READ]
