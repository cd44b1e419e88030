"""X Activity API events (the docs' own payloads) → posts; webhook CRC and signatures; edits; usage priced by the
Meter; the ladder's rungs; the webhook URL check."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from fake_x import fixture

from caredesk.connectors.base import Capability, PostEdited, Refused, Rung, WebhookRequest
from caredesk.connectors.builtin.x import XConfig, XProvider
from caredesk.connectors.builtin.x.webhook import crc_answer, digest
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, Meter, Operation

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BRAND = "1111111111111111111"  # the docs' filtered user
SECRET = "test_secret"


def provider(credentials: dict[str, Any] | None = None, **config: Any) -> XProvider:
    creds = {"access_token": "a", "consumer_secret": SECRET, **(credentials or {})}
    return XProvider(XConfig.model_validate({"user_id": BRAND, **config}), creds)


def events(*names: str) -> list[Any]:
    return [fixture(f"activity_{n}.json") for n in names]


def deliver(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_the_docs_post_events_are_summoned_posts() -> None:
    result = provider(keywords=["context"]).parse(
        deliver(events("post_mention_create", "post_reply_create", "post_quote_create")), NOW)
    assert result.rejected == []
    mention, reply, quote = result.posts
    assert mention.external_id == "2080765813578191303" and mention.text == "hey @ExampleUser"
    assert mention.author.handle == "OtherUser" and mention.author.followers == 97  # includes.users
    assert mention.url == "https://x.com/OtherUser/status/2080765813578191303"
    assert reply.in_reply_to_external_id == "2080761390344937796"
    # Replies and quotes come with empty includes: the author is known by id only.
    assert reply.author.external_id == "2222222222222222222" and reply.author.handle == "2222222222222222222"
    assert reply.url == "https://x.com/i/status/2090000000000000001"
    assert quote.matched_keywords == ("context",)
    assert all(p.summoned and not p.is_direct for p in result.posts)
    assert [(u.operation, u.resource_ids) for u in result.usage] == [
        (Operation.POST_READ, ("2080765813578191303",)), (Operation.POST_READ, ("2090000000000000001",)),
        (Operation.POST_READ, ("2090000000000000002",))]


def test_a_received_dm_is_a_direct_post_in_the_conversation_of_the_two_accounts() -> None:
    result = provider().parse(deliver(fixture("activity_dm_received.json")), NOW)  # one event, not a list
    (dm,) = result.posts
    assert dm.is_direct and dm.summoned and dm.text == "hello!"
    assert dm.external_id == "2080765901528535096"
    assert dm.conversation_external_id == "dm:1111111111111111111-2222222222222222222"
    assert dm.author.handle == "OtherUser"  # payload.users, wrapped in {"data": ...}
    assert dm.created_at == datetime.fromtimestamp(1784928224.372, UTC)
    assert [(u.operation, u.resource_ids) for u in result.usage] == [
        (Operation.DM_EVENT_READ, ("2080765901528535096",))]


def test_our_own_events_are_dropped_and_unknown_kinds_ignored() -> None:
    own = fixture("activity_post_mention_create.json")
    own["data"]["payload"]["author_id"] = BRAND
    own_dm = fixture("activity_dm_received.json")
    own_dm["data"]["payload"]["direct_message_events"][0]["message_create"]["sender_id"] = BRAND
    result = provider().parse(deliver([own, own_dm, fixture("activity_like_create.json")]), NOW)
    assert result.posts == [] and result.rejected == []


def test_broken_events_are_rejected_and_the_rest_of_the_delivery_kept() -> None:
    no_text_id = fixture("activity_post_mention_create.json")
    no_text_id["data"]["payload"]["id"] = "not-a-number"
    nul = fixture("activity_post_reply_create.json")
    nul["data"]["payload"]["text"] = "evil\x00"
    bad_dm = fixture("activity_dm_received.json")
    bad_dm["data"]["payload"]["direct_message_events"][0]["created_timestamp"] = "yesterday"
    body = [no_text_id, nul, bad_dm, {"data": {"event_uuid": "1"}}, "nonsense",
            fixture("activity_post_quote_create.json")]
    result = provider().parse(deliver(body), NOW)
    assert [p.external_id for p in result.posts] == ["2090000000000000002"]
    reasons = [r.reason for r in result.rejected]
    assert [r.position for r in result.rejected] == [0, 1, 2, 3, 4]
    assert "is not a number" in reasons[0] and "NUL" in reasons[1] and "created_timestamp" in reasons[2]
    assert "event_type" in reasons[3] and "not a JSON object" in reasons[4]
    broken = provider().parse(b"{not json", NOW)
    assert broken.posts == [] and "not JSON" in broken.rejected[0].reason and broken.rejected[0].raw == "{not json"


def test_an_edited_post_edits_the_one_stored_under_its_first_id() -> None:
    edited = fixture("activity_post_mention_create.json")
    payload = edited["data"]["payload"]
    payload.update(id="2080765813578191999", text="hey @ExampleUser (edited)",
                   edit_history_tweet_ids=["2080765813578191303", "2080765813578191999"])
    result = provider().parse(deliver([fixture("activity_post_mention_create.json"), edited]), NOW)
    assert [p.external_id for p in result.posts] == ["2080765813578191303"]
    (change,) = result.changes
    assert isinstance(change, PostEdited)
    assert change.post.external_id == "2080765813578191303" and change.post.text == "hey @ExampleUser (edited)"
    assert change.post.raw["latest_id"] == "2080765813578191999"


def test_usage_is_priced_and_deduplicated_within_the_day() -> None:
    body = deliver(events("post_mention_create", "post_reply_create") + [fixture("activity_dm_received.json")])
    meter = Meter(DEFAULT_X_PRICES)
    lines = meter.bill(provider().parse(body, NOW).usage)
    assert {(line.operation, line.billed, line.cost) for line in lines} == {
        (Operation.POST_READ, 2, Decimal("0.010")), (Operation.DM_EVENT_READ, 1, Decimal("0.010"))}
    again = meter.bill(provider().parse(body, NOW).usage)  # the same events delivered twice the same day
    assert sum(line.cost for line in again) == 0 and sum(line.deduped for line in again) == 3
    tomorrow = meter.bill(provider().parse(body, datetime(2026, 11, 24, 0, 1, tzinfo=UTC)).usage)
    assert sum(line.cost for line in tomorrow) == Decimal("0.020")
    assert {line.day for line in tomorrow} == {date(2026, 11, 24)}
    assert XProvider.prices is DEFAULT_X_PRICES


# -- webhook -------------------------------------------------------------------------------------------------


def test_crc_answers_with_the_documented_vector() -> None:
    assert json.loads(crc_answer("test_secret", "challenge_string").body) == {
        "response_token": "sha256=vDNbmFG8YIJ8S4uuylrvxR5Qx96E52lUf9cF+CNikFk="}
    answer = provider().verify(WebhookRequest("GET", {}, {"crc_token": "challenge_string"}, b""))
    assert answer is not None and answer.status == 200
    assert json.loads(answer.body)["response_token"] == "sha256=vDNbmFG8YIJ8S4uuylrvxR5Qx96E52lUf9cF+CNikFk="
    missing = provider().verify(WebhookRequest("GET", {}, {}, b""))
    assert missing is not None and missing.status == 400


def test_a_delivery_needs_the_right_signature() -> None:
    body = deliver(events("post_mention_create"))
    good = {"x-twitter-webhooks-signature": digest(SECRET, body)}
    assert provider().verify(WebhookRequest("POST", good, {}, body)) is None
    with pytest.raises(Refused, match="does not match"):
        provider().verify(WebhookRequest("POST", {"x-twitter-webhooks-signature": digest("other", body)}, {}, body))
    with pytest.raises(Refused, match="does not match"):
        provider().verify(WebhookRequest("POST", good, {}, body + b" "))  # a body changed on the way
    with pytest.raises(Refused, match="no x-twitter-webhooks-signature"):
        provider().verify(WebhookRequest("POST", {}, {}, body))
    with pytest.raises(Refused, match="consumer secret"):
        XProvider(XConfig.model_validate({}), {"access_token": "a"}).verify(WebhookRequest("POST", good, {}, body))


def test_the_ladder_follows_what_the_installation_has() -> None:
    assert {Capability.STREAM, Capability.POLL, Capability.WEBHOOK, Capability.REPLY} <= XProvider.capabilities
    url = "https://desk.example.com/hooks/7"
    full = provider({"bearer_token": "b"}, webhook_url=url)
    assert full.rungs() == (Rung.WEBHOOK, Rung.STREAM, Rung.POLL, Rung.IMPORT)
    assert provider({"bearer_token": "b"}).rungs() == (Rung.STREAM, Rung.POLL, Rung.IMPORT)
    no_secret = XProvider(XConfig.model_validate({"webhook_url": url}), {"access_token": "a"})
    assert no_secret.rungs() == (Rung.POLL, Rung.IMPORT)


@pytest.mark.parametrize(("url", "problem"), [
    ("http://desk.example.com/hooks/7", "https"),
    ("https://desk.example.com:8443/hooks/7", "port"),
    ("https://localhost/hooks/7", "public"),
    ("https://10.0.0.5/hooks/7", "public"),
    ("https://desk.example.com/hooks/7?x=1", "query"),
])
def test_a_webhook_url_must_be_public_https_without_a_port(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        XConfig.model_validate({"webhook_url": url})
    assert XConfig.model_validate({"webhook_url": " https://desk.example.com/hooks/7 "}).webhook_url \
        == "https://desk.example.com/hooks/7"


def test_post_text_is_kept_as_data() -> None:
    hostile = copy.deepcopy(fixture("activity_post_mention_create.json"))
    hostile["data"]["payload"]["text"] = "<script>alert(1)</script> @ExampleUser"
    (post,) = provider().parse(deliver(hostile), NOW).posts
    assert post.text == "<script>alert(1)</script> @ExampleUser"  # stored as written; templates escape it
