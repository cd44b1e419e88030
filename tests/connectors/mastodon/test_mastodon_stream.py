"""The streaming API (server-sent events) against the fake Mastodon: events, heartbeats, drops and resumption."""

from __future__ import annotations

from collections.abc import Callable

from fake_mastodon import DROP, HEARTBEAT, OUR_ID, FakeMastodon, customer, fixture, frame, mention, status
from mastodon_streams import consume

from caredesk.connectors.base import AuthRevoked, FetchResult, PostDeleted, PostEdited, RateLimited, Transient
from caredesk.connectors.builtin.mastodon import MastodonProvider

Make = Callable[..., MastodonProvider]


def posts_of(batches: list[FetchResult]) -> list[str]:
    return [p.external_id for b in batches for p in b.posts]


def test_stream_delivers_mentions_dms_edits_deletes_and_hashtag_leads(fake: FakeMastodon, make_provider: Make) -> None:
    dm = status("301", "@trwnh my card was charged twice", mention_us=True, visibility="direct")
    edited = status("302", "@trwnh (edited) still broken", mention_us=True, edited_at="2022-11-15T16:07:29.023Z")
    conversation = fixture("stream_conversation.json")
    fake.script_stream(
        "user",
        [
            HEARTBEAT,
            frame("notification", mention("2001", dm)),
            HEARTBEAT,
            frame("notification", {**mention("2002", status("9", "liked")), "type": "favourite"}),
            frame("update", status("303", "a home timeline post")),
            frame("status.update", edited),
            frame("status.update", status("304", "someone else's edit, not about us")),
            frame("delete", "302"),
            frame("conversation", conversation),
            frame("filters_changed", "undefined"),
            HEARTBEAT,
            frame("notification", mention("2003", status("305", "@trwnh last one", mention_us=True))),
        ],
    )
    fake.script_stream("hashtag:caredesk", [
        HEARTBEAT,
        frame("update", status("401", "loving #caredesk today", tags=("caredesk",))),
        frame("status.update", status("401", "loving #caredesk today (edit)", tags=("caredesk",),
                                      edited_at="2022-11-15T16:07:29.023Z")),
    ])
    provider = make_provider(hashtags=("caredesk",))
    seen = lambda batches: {"305", "401"} <= set(posts_of(batches)) and any(  # noqa: E731
        c.post.external_id == "401" for b in batches for c in b.changes if isinstance(c, PostEdited))

    batches, error = consume(provider, {}, stop=seen)

    assert error is None
    posts = {p.external_id: p for b in batches for p in b.posts}
    assert set(posts) == {"301", "305", "401", conversation["last_status"]["id"]}
    assert posts["301"].is_direct and posts["301"].summoned
    assert posts["401"].summoned is False and posts["401"].matched_keywords
    assert posts[conversation["last_status"]["id"]].conversation_external_id == conversation["id"]
    changes = [c for b in batches for c in b.changes]
    assert PostDeleted("302") in changes
    edits = {c.post.external_id: c.post.text for c in changes if isinstance(c, PostEdited)}
    assert edits == {"302": "@trwnh (edited) still broken", "401": "loving #caredesk today (edit)"}
    assert batches[-1].cursor["notifications"] == "2003" or any(b.cursor.get("notifications") == "2003"
                                                                for b in batches)
    assert any(b.cursor.get("tags") == {"caredesk": "401"} for b in batches)
    [user] = fake.requests_to("/api/v1/streaming/user")
    assert user.headers["accept"] == "text/event-stream"
    [tag] = fake.requests_to("/api/v1/streaming/hashtag")
    assert tag.query == {"tag": ["caredesk"]}
    # The catch-up ran once, on connection, before the events were handed out.
    assert len(fake.requests_to("/api/v1/notifications")) == 1


def test_a_drop_mid_stream_then_resume_loses_and_doubles_nothing(fake: FakeMastodon, make_provider: Make) -> None:
    def note(n: int) -> dict[str, object]:
        return mention(str(5000 + n), status(str(7000 + n), f"@trwnh message {n}", mention_us=True))

    fake.notifications += [note(1), note(2)]
    fake.script_stream(
        "user",
        [HEARTBEAT, frame("notification", note(3)), HEARTBEAT, DROP],  # #3 comes only through the stream
        [frame("notification", note(5)), HEARTBEAT, frame("notification", note(6))],
    )
    provider = make_provider()

    first, error = consume(provider, {})
    assert isinstance(error, Transient)
    cursor = first[-1].cursor
    assert cursor == {"notifications": "5003"}

    # While disconnected, #4 and #5 arrive; #5 is also in the second connection's buffer, #6 only in the stream.
    fake.notifications += [note(3), note(4), note(5)]
    second, error = consume(provider, cursor, stop=lambda batches: "7006" in posts_of(batches))
    assert error is None

    delivered = posts_of(first) + posts_of(second)
    assert sorted(delivered) == [str(7000 + n) for n in range(1, 7)]  # each exactly once
    assert second[-1].cursor == {"notifications": "5006"}
    resumed = fake.requests_to("/api/v1/notifications")[-2]
    assert resumed.query["min_id"] == ["5003"]
    assert fake.connections["user"] == 2


def test_a_bad_event_is_rejected_and_the_stream_goes_on(fake: FakeMastodon, make_provider: Make) -> None:
    broken_time = mention("6002", status("8002", "@trwnh x", mention_us=True, created_at="soon"))
    fake.script_stream("user", [
        frame("notification", "{not json"),
        frame("notification", broken_time),
        frame("delete", ""),
        frame("update", "[1, 2"),  # home timeline updates are not read at all
        frame("notification", mention("6003", status("8003", "@trwnh fine", mention_us=True))),
    ])
    fake.script_stream("hashtag:caredesk", [
        frame("update", '"just a string"'),
        frame("update", status("8004", "#caredesk works", tags=("caredesk",), account={"id": 5})),
        frame("update", status("8005", "#caredesk fine", tags=("caredesk",))),
    ])
    provider = make_provider(hashtags=("caredesk",))
    batches, error = consume(provider, {}, stop=lambda b: {"8003", "8005"} <= set(posts_of(b)))
    assert error is None
    assert sorted(posts_of(batches)) == ["8003", "8005"]
    reasons = [r.reason for b in batches for r in b.rejected]
    assert len(reasons) == 5
    assert any("not JSON" in r for r in reasons) and any("created_at" in r for r in reasons)
    assert any("delete event without a usable status id" in r for r in reasons)
    assert any("not a JSON object" in r for r in reasons) and any("account" in r for r in reasons)
    assert any(b.cursor.get("notifications") == "6003" for b in batches)


def test_hashtag_stream_keeps_hostile_html_as_plain_text(fake: FakeMastodon, make_provider: Make) -> None:
    hostile = status("9001", "", tags=("caredesk",), author=customer("66", "mallory@evil.example"),
                     html_content='<p>#caredesk <script>document.cookie</script><a href="javascript:x">click</a>'
                                  "&lt;img src=x onerror=alert(1)&gt;</p>")
    fake.script_stream("hashtag:caredesk", [frame("update", hostile)])
    batches, error = consume(make_provider(hashtags=("caredesk",)), {}, stop=lambda b: bool(posts_of(b)))
    [post] = [p for b in batches for p in b.posts]
    assert post.text == "#caredesk click<img src=x onerror=alert(1)>"  # shown as text, never as markup
    assert "document.cookie" not in post.text


def test_stream_with_a_revoked_token_is_auth_revoked(fake: FakeMastodon, make_provider: Make) -> None:
    batches, error = consume(make_provider({"access_token": "revoked"}), {})
    assert isinstance(error, AuthRevoked) and batches == []


def test_stream_refused_by_the_streaming_server(fake: FakeMastodon, make_provider: Make) -> None:
    provider = make_provider()
    provider.whoami()
    provider.instance_info()
    fake.fail("/api/v1/streaming/user", 401, body={"error": "Error: Access token does not have the required scopes"})
    batches, error = consume(provider, {})
    assert isinstance(error, AuthRevoked) and "required scopes" in str(error)


def test_catch_up_stopped_by_the_rate_limit_does_not_stream_past_the_gap(fake: FakeMastodon,
                                                                          make_provider: Make) -> None:
    for n in range(1, 101):
        fake.notifications.append(mention(str(10_000 + n), status(str(20_000 + n), "@trwnh hi", mention_us=True)))
    late = mention("10200", status("20200", "@trwnh new", mention_us=True))
    fake.script_stream("user", [frame("notification", late)])
    provider = make_provider()
    provider.whoami()
    provider.instance_info()
    fake.rate_remaining = 2
    batches, error = consume(provider, {"notifications": "10000"})
    assert isinstance(error, RateLimited)
    assert len(posts_of(batches)) == 80 and batches[-1].cursor == {"notifications": "10080"}
    assert "20200" not in posts_of(batches)  # streamed events would jump the cursor over the unread 20


def test_own_statuses_on_a_hashtag_are_not_leads(fake: FakeMastodon, make_provider: Make) -> None:
    ours = status("9101", "#caredesk release notes", tags=("caredesk",), author=fixture("verify_credentials.json"))
    theirs = status("9102", "#caredesk question", tags=("caredesk",))
    fake.script_stream("hashtag:caredesk", [frame("update", ours), frame("update", theirs)])
    batches, _ = consume(make_provider(hashtags=("caredesk",)), {}, stop=lambda b: "9102" in posts_of(b))
    assert posts_of(batches) == ["9102"]
    assert fixture("verify_credentials.json")["id"] == OUR_ID


def test_public_timeline_listening_keeps_only_keyword_matches(fake: FakeMastodon, make_provider: Make) -> None:
    fake.public.append(status("9200", "the Router from acme died", language="en"))
    fake.script_stream("public/local", [
        frame("update", status("9201", "nice weather today")),
        frame("update", status("9202", "is anyone else's ROUTER blinking red?")),
        frame("update", status("9203", "router jokes", language="de")),
    ])
    provider = make_provider(keywords=("router",), public_timeline="local", languages=("en",))
    batches, error = consume(provider, {}, stop=lambda b: "9202" in posts_of(b))
    assert error is None
    assert posts_of(batches) == ["9200", "9202"]
    assert all(not p.summoned and p.matched_keywords == ("router",) for b in batches for p in b.posts)
    catch_up = fake.requests_to("/api/v1/timelines/public")
    assert all(r.query["local"] == ["true"] for r in catch_up) and "min_id" not in catch_up[0].query
    assert fake.connections["public/local"] == 1
    assert batches[-1].cursor["public"] in ("9202", "9203")  # 9203 (dropped: German) may share the last batch
