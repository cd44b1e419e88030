"""Registering the webhook with X and the Activity API subscriptions that deliver to it (``XProvider.subscribe``)
against the fake X: created once, found again, moved rather than duplicated, and X's reasons when it says no."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fake_x import ACCESS, BEARER, CLIENT_ID, OUR_ID, REFRESH, FakeX

from caredesk.connectors.base import Refused
from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.builtin.x.activity import EVENT_TYPES

Make = Callable[..., XProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
URL = "https://desk.example.com/hooks/7"
FULL = {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID, "bearer_token": BEARER,
        "consumer_secret": "consumer-secret"}


def test_the_webhook_is_registered_once_and_the_subscriptions_deliver_to_it(make_provider: Make,
                                                                            fake: FakeX) -> None:
    provider = make_provider(FULL, user_id=OUR_ID, webhook_url=URL)
    first = provider.subscribe(NOW)
    (hook,) = fake.state.webhooks
    assert json.loads(fake.requests_to("POST", "/2/webhooks")[0].body) == {"url": URL}
    assert fake.requests_to("POST", "/2/webhooks")[0].headers["authorization"] == f"Bearer {BEARER}"
    assert first.webhook_id == hook["id"] and first.learned() == {"webhook_id": hook["id"]}
    assert first.subscriptions.created == EVENT_TYPES
    assert {(s["event_type"], s["webhook_id"]) for s in fake.state.subscriptions} == {
        (k, hook["id"]) for k in EVENT_TYPES}
    assert any("registered with X now" in line for line in first.lines())
    # Again, with the id stored: nothing new at X.
    again = make_provider(FULL, user_id=OUR_ID, webhook_url=URL, webhook_id=hook["id"]).subscribe(NOW)
    assert again.webhook is not None and not again.webhook.created
    assert again.subscriptions.kept == EVENT_TYPES and again.subscriptions.created == ()
    assert len(fake.requests_to("POST", "/2/webhooks")) == 1 and len(fake.state.subscriptions) == 4
    assert any("registered already" in line for line in again.lines())


def test_stream_subscriptions_are_moved_to_the_webhook_not_doubled(make_provider: Make, fake: FakeX) -> None:
    stream_only = make_provider(FULL, user_id=OUR_ID)
    assert stream_only.subscribe(NOW).lines()[0] == "no webhook_url set: the subscriptions deliver to the activity " \
                                                     "stream only"
    assert len(fake.state.subscriptions) == 4 and fake.state.webhooks == []
    done = make_provider(FULL, user_id=OUR_ID, webhook_url=URL).subscribe(NOW)
    assert done.subscriptions.moved == EVENT_TYPES and done.subscriptions.created == ()
    assert len(fake.state.subscriptions) == 4
    assert {s["webhook_id"] for s in fake.state.subscriptions} == {done.webhook_id}
    first = fake.state.subscriptions[0]["subscription_id"]
    assert len(fake.requests_to("PUT", f"/2/activity/subscriptions/{first}")) == 1


def test_x_refusing_the_webhook_says_why(make_provider: Make, fake: FakeX) -> None:
    fake.state.consumer_secret = "consumer-secret"  # X runs the CRC check; the URL does not reach any desk
    with pytest.raises(Refused, match="CrcValidationFailed"):
        make_provider(FULL, user_id=OUR_ID, webhook_url=URL).subscribe(NOW)
    assert fake.state.webhooks == [] and fake.state.subscriptions == []  # nothing subscribed to a broken hook
    fake.state.consumer_secret = None
    fake.state.webhooks = [{"id": "5", "url": URL, "valid": False, "created_at": "2026-11-01T00:00:00.000Z"}]
    fake.state.consumer_secret = "consumer-secret"
    with pytest.raises(Refused, match="still marks webhook 5"):
        make_provider(FULL, user_id=OUR_ID, webhook_url=URL).subscribe(NOW)
    assert len(fake.requests_to("PUT", "/2/webhooks/5")) == 1  # asked to check again first


def test_what_a_webhook_needs_is_checked_before_x_is_asked(make_provider: Make, fake: FakeX) -> None:
    without_secret = {k: v for k, v in FULL.items() if k != "consumer_secret"}
    with pytest.raises(Refused, match="consumer_secret"):
        make_provider(without_secret, user_id=OUR_ID, webhook_url=URL).subscribe(NOW)
    without_bearer = {k: v for k, v in FULL.items() if k != "bearer_token"}
    with pytest.raises(Refused, match="bearer_token"):
        make_provider(without_bearer, user_id=OUR_ID, webhook_url=URL).subscribe(NOW)
    assert fake.state.requests == []
