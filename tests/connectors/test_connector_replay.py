"""The replay provider: a clock-driven simulator, so every test pins ``now``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from caredesk.connectors.base import Capability, ConnectorError, NormalizedAuthor, OutboundReply
from caredesk.connectors.builtin.replay import (
    BRAND_ACCOUNTS,
    BRAND_HANDLES,
    MAX_BATCH,
    ReplayConfig,
    ReplayProvider,
)
from caredesk.connectors.registry import get_provider_class

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def provider(**config: Any) -> ReplayProvider:
    return ReplayProvider(ReplayConfig(**config), {})


def ids(posts: Any) -> list[str]:
    return [p.external_id for p in posts]


def play(
    p: ReplayProvider, until: datetime, step: timedelta, cursor: dict[str, Any] | None = None
) -> list[Any]:
    """Poll every ``step`` from T0 to ``until``, saving the cursor each time, as the worker does."""
    cursor = dict(cursor or {})
    out: list[Any] = []
    now = T0
    while now <= until:
        result = p.fetch(cursor, now)
        out.extend(result.posts)
        cursor = dict(result.cursor)
        now += step
    return out


def test_registered_under_its_key_with_its_capabilities() -> None:
    assert get_provider_class("replay") is ReplayProvider
    assert ReplayProvider.capabilities == {Capability.POLL, Capability.REPLY, Capability.DIRECT_MESSAGES}
    assert provider().platform == "x"
    assert provider(platform="mastodon").platform == "mastodon"


def test_config_rejects_a_speed_that_is_not_positive_and_unknown_keys() -> None:
    for bad in ({"speed": 0}, {"speed": -1.0}, {"speed": float("inf")}, {"sped": 2}):
        with pytest.raises(ValueError):
            ReplayProvider.parse_config(bad)
    assert ReplayProvider.parse_config({"brand": "nimbus", "speed": "2.5"}) == ReplayConfig(
        brand="nimbus", speed=2.5
    )


def test_an_empty_cursor_starts_the_show_now_and_plays_the_first_post_at_once() -> None:
    result = provider().fetch({}, T0)
    assert ids(result.posts) == ["nimbus-001"]
    assert result.posts[0].created_at == T0
    assert result.cursor == {"started_at": T0.isoformat(), "position": 1, "loop": 1}
    json.dumps(result.cursor)  # the cursor is stored in a JSON column


def test_the_first_seconds_bring_posts_of_every_brand() -> None:
    first = provider().fetch({}, T0)
    result = provider().fetch(first.cursor, T0 + timedelta(seconds=5))
    assert ids(result.posts) == ["aerolark-001", "nimbus-002", "pennywise-001", "aerolark-002"]
    assert [p.created_at - T0 for p in result.posts] == [
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=3.5),
        timedelta(seconds=4),
    ]
    assert all(p.created_at.tzinfo is UTC for p in result.posts)


def test_speed_multiplies_real_time() -> None:
    fast = provider(speed=10).fetch({"started_at": T0.isoformat()}, T0 + timedelta(seconds=10))
    slow = provider().fetch({"started_at": T0.isoformat()}, T0 + timedelta(seconds=100))
    assert ids(fast.posts) == ids(slow.posts)
    aerolark_003 = next(p for p in fast.posts if p.external_id == "aerolark-003")
    assert aerolark_003.created_at == T0 + timedelta(seconds=1.2)  # offset 12s at ten times real speed


def test_same_cursor_and_now_give_the_same_posts_and_cursor() -> None:
    cursor = provider().fetch({}, T0).cursor
    now = T0 + timedelta(seconds=200)
    first, second = provider().fetch(cursor, now), provider().fetch(cursor, now)
    assert first.posts and first.posts == second.posts
    assert first.cursor == second.cursor


def test_polling_often_or_once_yields_the_same_posts_each_exactly_once() -> None:
    end = T0 + timedelta(seconds=650)
    often = play(provider(loop=False), end, timedelta(seconds=7))
    once = provider(loop=False).fetch({"started_at": T0.isoformat()}, end).posts
    assert ids(often) == ids(once)
    assert len(set(ids(often))) == len(often) == len(provider().posts)


def test_only_the_chosen_brand_is_played() -> None:
    p = provider(brand="pennywise", loop=False)
    posts = p.fetch({"started_at": T0.isoformat()}, T0 + timedelta(hours=1)).posts
    assert posts and all(pid.startswith("pennywise-") for pid in ids(posts))
    with pytest.raises(ConnectorError, match="no posts for brand 'acme'"):
        provider(brand="acme").fetch({}, T0)


def test_without_looping_the_show_ends() -> None:
    p = provider(brand="aerolark", loop=False)
    done = p.fetch({"started_at": T0.isoformat()}, T0 + timedelta(hours=1))
    later = p.fetch(done.cursor, T0 + timedelta(days=3))
    assert later.posts == ()
    assert later.cursor == done.cursor == {"started_at": T0.isoformat(), "position": len(p.posts), "loop": 1}


def test_each_loop_has_fresh_post_and_thread_ids_but_the_same_authors() -> None:
    p = provider(brand="nimbus")
    loop_length = timedelta(seconds=p.loop_length_s)
    first = p.fetch({"started_at": T0.isoformat()}, T0 + loop_length - timedelta(seconds=1))
    second = p.fetch(first.cursor, T0 + 2 * loop_length - timedelta(seconds=1))
    assert len(first.posts) == len(second.posts) == len(p.posts)
    assert second.cursor["loop"] == 2
    assert not set(ids(first.posts)) & set(ids(second.posts))
    for one, two in zip(first.posts, second.posts, strict=True):
        assert two.external_id == f"{one.external_id}-L2"
        assert two.conversation_external_id == f"{one.conversation_external_id}-L2"
        assert two.in_reply_to_external_id == (
            f"{one.in_reply_to_external_id}-L2" if one.in_reply_to_external_id else ""
        )
        assert two.author == one.author
        assert two.text == one.text
        assert two.created_at == one.created_at + loop_length
        assert two.raw["replay"]["loop"] == 2


def test_a_reply_in_a_later_loop_points_into_the_same_loop() -> None:
    p = provider(brand="nimbus")
    second_loop = T0 + timedelta(seconds=p.loop_length_s + 60)
    cursor = {"started_at": T0.isoformat(), "position": len(p.posts), "loop": 1}
    posts = p.fetch(cursor, second_loop).posts
    by_id = {post.external_id: post for post in posts}
    reply = by_id["nimbus-007-L2"]
    assert reply.author.external_id == "brand-nimbus"
    assert reply.in_reply_to_external_id == "nimbus-001-L2" and reply.in_reply_to_external_id in by_id


def test_a_show_left_stopped_resumes_at_the_loop_now_playing() -> None:
    p = provider(brand="aerolark")
    five_loops_later = T0 + timedelta(seconds=5 * p.loop_length_s + 20)
    result = p.fetch({"started_at": T0.isoformat(), "position": 10, "loop": 1}, five_loops_later)
    assert result.posts and all(pid.endswith("-L6") for pid in ids(result.posts))
    assert result.posts[0].external_id == "aerolark-001-L6"
    assert result.cursor["loop"] == 6


def test_a_loop_boundary_between_polls_drops_nothing() -> None:
    p = provider(brand="pennywise")
    just_before_end = T0 + timedelta(seconds=p.posts[-10].offset_s)
    cursor = p.fetch({"started_at": T0.isoformat()}, just_before_end).cursor
    into_loop_two = T0 + timedelta(seconds=p.loop_length_s + 5)
    posts = p.fetch(cursor, into_loop_two).posts
    assert ids(posts)[:9] == [post.external_id for post in p.posts[-9:]]
    assert ids(posts)[9] == "pennywise-001-L2"


def test_a_poll_returns_at_most_a_batch_and_the_next_poll_continues(tmp_path: Path) -> None:
    script = tmp_path / "burst.jsonl"
    with script.open("w", encoding="utf-8") as fh:
        for n in range(1200):
            record = {
                "id": f"burst-{n}",
                "brand": "nimbus",
                "offset_s": n / 100,
                "author": {"id": f"u{n % 7}", "handle": f"user{n % 7}"},
                "text": f"post {n}",
                "in_reply_to": None,
                "conversation": None,
                "direct": False,
                "lang": "en",
            }
            fh.write(json.dumps(record) + "\n")
    p = provider(path=str(script), loop=False)
    cursor: dict[str, Any] = {"started_at": T0.isoformat()}
    sizes = []
    seen: list[str] = []
    for _ in range(4):
        result = p.fetch(cursor, T0 + timedelta(minutes=1))
        sizes.append(len(result.posts))
        seen.extend(ids(result.posts))
        cursor = dict(result.cursor)
    assert sizes == [MAX_BATCH, MAX_BATCH, 200, 0]
    assert seen == [f"burst-{n}" for n in range(1200)]


def test_a_script_with_a_broken_thread_is_refused_with_its_line(tmp_path: Path) -> None:
    script = tmp_path / "broken.jsonl"
    good = {"id": "a", "brand": "b", "offset_s": 0, "author": {"id": "u", "handle": "h"}, "text": "hi"}
    orphan = dict(good, id="c", in_reply_to="missing")
    script.write_text(json.dumps(good) + "\n" + json.dumps(orphan) + "\n", encoding="utf-8")
    with pytest.raises(ConnectorError, match="line 2: 'in_reply_to' 'missing' is not an earlier post"):
        provider(path=str(script)).fetch({}, T0)
    with pytest.raises(ConnectorError, match="cannot read replay script"):
        provider(path=str(tmp_path / "absent.jsonl")).fetch({}, T0)


def test_a_malformed_cursor_or_a_naive_clock_is_refused() -> None:
    for cursor in (
        {"position": 3},
        {"started_at": "yesterday"},
        {"started_at": "2024-05-01T09:00:00"},
        {"started_at": T0.isoformat(), "position": -1},
        {"started_at": T0.isoformat(), "loop": 0},
    ):
        with pytest.raises(ConnectorError, match="cursor"):
            provider().fetch(cursor, T0)
    with pytest.raises(ConnectorError, match="timezone-aware"):
        provider().fetch({}, datetime(2024, 5, 1, 9, 0))  # noqa: DTZ001 - the naive clock is the point


def test_created_at_is_utc_whatever_zone_the_clock_and_cursor_use() -> None:
    paris = timezone(timedelta(hours=2))
    result = provider().fetch(
        {"started_at": T0.astimezone(paris).isoformat()}, (T0 + timedelta(seconds=2)).astimezone(paris)
    )
    assert ids(result.posts) == ["nimbus-001", "aerolark-001", "nimbus-002"]
    assert all(p.created_at.utcoffset() == timedelta(0) for p in result.posts)


def test_the_brands_own_replies_are_in_the_stream_under_their_account_ids() -> None:
    posts = provider(loop=False).fetch({"started_at": T0.isoformat()}, T0 + timedelta(hours=1)).posts
    for brand, accounts in BRAND_ACCOUNTS.items():
        ours = [p for p in posts if p.author.external_id in accounts]
        assert len(ours) >= 10, brand
        assert {p.author.handle for p in ours} == {BRAND_HANDLES[brand]}
        assert all(p.raw["replay"]["brand"] == brand for p in ours)
        assert any(p.in_reply_to_external_id for p in ours)


def reply(key: str, text: str = "Thanks, we're on it!") -> OutboundReply:
    return OutboundReply(
        idempotency_key=key,
        text=text,
        in_reply_to_external_id="nimbus-001",
        in_reply_to_author=NormalizedAuthor(external_id="u2001", handle="mariaelena_sf"),
    )


def test_send_reply_simulates_a_platform_that_honours_idempotency_keys() -> None:
    p = provider()
    later = T0 + timedelta(minutes=5)
    first = p.send_reply(reply("reply-42"), T0)
    again = p.send_reply(reply("reply-42", text="retried"), later)
    other = p.send_reply(reply("reply-43"), T0)
    assert first.external_id == again.external_id
    assert (
        first.external_id.startswith("replay-reply-") and len(first.external_id) == len("replay-reply-") + 16
    )
    assert other.external_id != first.external_id
    assert first.created_at == T0 and again.created_at == later


def test_send_reply_refuses_an_empty_text() -> None:
    for text in ("", "   \n"):
        with pytest.raises(ConnectorError, match="empty reply"):
            provider().send_reply(reply("reply-44", text=text), T0)
