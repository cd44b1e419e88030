"""X direct messages against the fake X server: the DM events a poll reads (their own cursor, billed as DM event
reads), a DM sent and X's 403 when the user's settings forbid it, the rule on unsolicited outreach, and a DM
whose answer was lost found in the conversation instead of being sent twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fake_x import OUR_ID, FakeX, fixture

from caredesk.connectors.base import CannotTell, NormalizedAuthor, OutboundReply, Refused
from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.costs.prices import Operation

Make = Callable[..., XProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FLOOD = NormalizedAuthor(external_id="944480690", handle="FloodSocial")
DM_ID = "1585047616894574596"


def dm(text: str = "We have refunded order 1234.", *, summoned: bool = True, to: NormalizedAuthor = FLOOD,
       parent: str = DM_ID) -> OutboundReply:
    return OutboundReply(idempotency_key="dm-1", text=text, in_reply_to_external_id=parent, in_reply_to_author=to,
                         is_direct=True, summoned=summoned)


def event(event_id: str, text: str, sender: str = FLOOD.external_id) -> dict[str, object]:
    return {"id": event_id, "event_type": "MessageCreate", "text": text, "sender_id": sender,
            "dm_conversation_id": f"{FLOOD.external_id}-{OUR_ID}", "created_at": "2022-10-26T09:00:00.000Z"}


def test_a_poll_reads_the_dms_as_direct_posts_with_a_cursor_of_their_own(make_provider: Make, fake: FakeX) -> None:
    fake.state.dm_events = fixture("dm_events.json")["data"] + [event("1585047616894574600", "our answer", OUR_ID)]
    result = make_provider(direct_messages=True).fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["1581048670673260549", DM_ID]  # ours left out
    newest = result.posts[-1]
    assert newest.is_direct and newest.summoned and newest.text == "Hello, just you!"
    assert newest.author.handle == "FloodSocial" and newest.author.name == "API Demos"
    assert newest.conversation_external_id == "944480690-2244994945"
    assert newest.url == "https://x.com/messages/944480690-2244994945"
    assert newest.created_at == datetime(2022, 10, 25, 23, 16, 15, tzinfo=UTC)
    assert result.cursor == {"dm_since": "1585047616894574600"}
    [usage] = result.usage
    assert usage.operation == Operation.DM_EVENT_READ and len(usage.resource_ids) == 3
    [request] = fake.requests_to("GET", "/2/dm_events")
    assert request.query["expansions"] == "sender_id" and request.query["event_types"] == "MessageCreate"
    # The next poll reads only what is newer, and the mentions keep their own cursor beside it.
    fake.state.dm_events.append(event("1585047616894574700", "still waiting"))
    again = make_provider(direct_messages=True).fetch(result.cursor, NOW)
    assert [p.text for p in again.posts] == ["still waiting"]
    assert again.cursor == {"dm_since": "1585047616894574700"}
    # X bills every event a page returns (the same ones again are free within the UTC day): a small first page.
    [page] = again.usage
    assert page.resource_ids[:2] == ("1585047616894574700", "1585047616894574600") and len(page.resource_ids) == 4
    assert fake.requests_to("GET", "/2/dm_events")[1].query["max_results"] == "20"


def test_dms_are_not_read_unless_the_config_says_so(make_provider: Make, fake: FakeX) -> None:
    fake.state.dm_events = fixture("dm_events.json")["data"]
    assert make_provider().fetch({}, NOW).posts == []
    assert fake.requests_to("GET", "/2/dm_events") == []
    with pytest.raises(Refused, match="no private replies"):
        make_provider().send_reply(dm(), NOW)


def test_a_long_dm_catch_up_goes_on_from_where_it_stopped(make_provider: Make, fake: FakeX,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from caredesk.connectors.builtin.x import dm as module

    monkeypatch.setattr(module, "MAX_PAGES", 2)
    fake.page_size = 2  # type: ignore[attr-defined]
    fake.state.dm_events = [event(str(1000 + i), f"message {i}") for i in range(7)]
    first = make_provider(direct_messages=True, user_id=OUR_ID).fetch({"dm_since": "999"}, NOW)
    assert [p.text for p in first.posts] == ["message 3", "message 4", "message 5", "message 6"]
    assert first.cursor == {"dm_since": "999", "dm_resume": "4", "dm_top": "1006"}
    second = make_provider(direct_messages=True, user_id=OUR_ID).fetch(first.cursor, NOW)
    assert [p.text for p in second.posts] == ["message 0", "message 1", "message 2"]
    assert second.cursor == {"dm_since": "1006"}


def test_a_broken_dm_event_is_rejected_and_the_rest_kept(make_provider: Make, fake: FakeX) -> None:
    fake.state.dm_events = [event("2000", "fine"), event("2001", "ghost", sender="42"),
                            {**event("2002", "bad"), "created_at": "yesterday"}]
    result = make_provider(direct_messages=True, user_id=OUR_ID).fetch({}, NOW)
    assert [p.external_id for p in result.posts] == ["2000"]
    assert sorted(r.reason for r in result.rejected) == [
        "DM event 2001: its sender 42 is missing from includes.users",
        "DM event 2002's created_at is not an ISO 8601 timestamp: 'yesterday'",
    ]
    assert result.cursor == {"dm_since": "2002"}


def test_send_a_dm(make_provider: Make, fake: FakeX) -> None:
    sent = make_provider(direct_messages=True).send_reply(dm(), NOW)
    [request] = fake.requests_to("POST", f"/2/dm_conversations/with/{FLOOD.external_id}/messages")
    assert json.loads(request.body) == {"text": "We have refunded order 1234."}
    assert sent.external_id == fake.state.dm_events[-1]["id"]
    assert sent.url == f"https://x.com/messages/{FLOOD.external_id}-{OUR_ID}"  # the smaller id first
    assert fake.requests_to("POST", "/2/tweets") == []


def test_a_dm_the_users_settings_forbid_is_refused_with_xs_reason(make_provider: Make, fake: FakeX) -> None:
    fake.state.dm_closed = {FLOOD.external_id}
    with pytest.raises(Refused, match="You are not permitted to send messages to this user"):
        make_provider(direct_messages=True).send_reply(dm(), NOW)
    assert fake.state.dm_events == []


def test_a_dm_to_someone_who_never_wrote_to_the_brand_is_refused_before_any_request(make_provider: Make,
                                                                                   fake: FakeX) -> None:
    provider = make_provider(direct_messages=True)
    with pytest.raises(Refused, match="forbid unsolicited direct messages"):
        provider.send_reply(dm(summoned=False), NOW)
    assert fake.state.requests == []
    rules = provider.reply_rules()
    assert rules.problem("hi", direct=True, summoned=False) is not None
    assert rules.problem("hi", direct=True) is None


def test_a_dm_has_xs_dm_limit_not_the_posts(make_provider: Make, fake: FakeX) -> None:
    rules = make_provider(direct_messages=True).reply_rules()
    assert rules.problem("a" * 10_000, direct=True) is None
    assert rules.problem("a" * 10_001, direct=True) == \
        "too long: 10001 characters, the limit for a direct message is 10000"
    assert rules.problem("a" * 281) is not None  # a post keeps its 280


def test_a_dm_whose_answer_was_lost_is_found_in_the_conversation(make_provider: Make, fake: FakeX) -> None:
    fake.fail("POST", f"/2/dm_conversations/with/{FLOOD.external_id}/messages", 503, {"title": "Unavailable"},
              after_effect=True)
    provider = make_provider(direct_messages=True, user_id=OUR_ID)
    with pytest.raises(Exception, match="503"):
        provider.send_reply(dm(), NOW)
    found = provider.find_reply(dm(), NOW)
    assert found is not None and found.external_id == fake.state.dm_events[-1]["id"]
    [look] = fake.requests_to("GET", f"/2/dm_conversations/with/{FLOOD.external_id}/dm_events")
    assert look.query["max_results"] == "50"  # one page: DM event reads cost $0.010 each
    assert provider.find_reply(dm("another text"), NOW) is None


def test_find_dm_cannot_tell_beyond_one_page(make_provider: Make, fake: FakeX) -> None:
    fake.page_size = 2  # type: ignore[attr-defined]
    fake.state.dm_events = [event(str(3000 + i), f"message {i}") for i in range(3)]
    with pytest.raises(CannotTell, match="latest 50"):
        make_provider(direct_messages=True, user_id=OUR_ID).find_reply(dm(), NOW)
