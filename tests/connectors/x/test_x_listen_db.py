"""X listening through the real runtime: ``caredesk listen`` holding the Activity API stream against the fake X
(catch-up, a drop, a reconnection, a DM), and a signed webhook delivery to ``/hooks/<id>`` processed into cases;
both billed in the usage ledger."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from fake_x import ACCESS, BEARER, CLIENT_ID, OUR_ID, REFRESH, FakeX, fixture, line, tweet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from runtime_helpers import listening, wait_until  # noqa: E402

from caredesk.cases.models import Post  # noqa: E402
from caredesk.connectors.actions import do_create_installation  # noqa: E402
from caredesk.connectors.builtin.x import XProvider  # noqa: E402
from caredesk.connectors.builtin.x.webhook import digest  # noqa: E402
from caredesk.connectors.costs.models import UsageEntry  # noqa: E402
from caredesk.connectors.models import ConnectorInstallation, RawPayload  # noqa: E402
from caredesk.connectors.processing import process_payload  # noqa: E402
from factories import make_brand  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "consumer-secret"


def _event(name: str, **payload: object) -> dict[str, object]:
    body = fixture(f"activity_{name}.json")
    body["data"]["filter"]["user_id"] = OUR_ID
    body["data"]["payload"].update(payload)
    return body


def _install(fake: FakeX) -> ConnectorInstallation:
    return do_create_installation(
        make_brand(), "x", "Brand on X", {"api": fake.url, "user_id": OUR_ID},
        credentials={"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID,
                     "bearer_token": BEARER, "consumer_secret": SECRET})


def _stored(installation: ConnectorInstallation) -> list[str]:
    return sorted(Post.objects.filter(installation=installation).values_list("external_id", flat=True))


def _billed(installation: ConnectorInstallation) -> dict[str, tuple[int, Decimal]]:
    return {e.operation: (e.units_billed, e.cost) for e in UsageEntry.objects.filter(installation=installation)}


def test_the_listener_streams_x_activity_into_cases_across_a_drop(fake: FakeX, registered: type[XProvider]) -> None:
    fake.state.mentions = [tweet("1900", "@TwitterDev missed while nobody listened")]
    dm = fixture("activity_dm_received.json")
    dm["data"]["payload"]["direct_message_events"][0]["message_create"]["target"]["recipient_id"] = OUR_ID
    fake.state.streams["/2/activity/stream"] = [
        [b"\r\n", line(_event("post_mention_create", id="1950", edit_history_tweet_ids=["1950"])), b"\r\n"],
        [line(dm)],  # the reconnection
    ]
    installation = _install(fake)
    with listening():
        wait_until(lambda: _stored(installation) == ["1900", "1950", "2080765901528535096"], what="the posts")
    assert len(fake.requests_to("GET", "/2/activity/stream")) >= 2
    # The reconnection caught up from the cursor the stream saved (the streamed mention), not from the start.
    since = [r.query.get("since_id") for r in fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions")]
    assert since[:2] == [None, "1950"]
    direct = Post.objects.get(external_id="2080765901528535096")
    assert direct.is_direct and direct.case_id is not None
    mention = Post.objects.get(external_id="1950")
    assert mention.text == "hey @ExampleUser"
    billed = _billed(installation)
    assert billed["owned_read"][0] >= 1 and billed["post_read"] == (1, Decimal("0.005"))
    assert billed["dm_event_read"] == (1, Decimal("0.010"))
    assert not RawPayload.objects.filter(installation=installation).exclude(status="processed").exists()


def test_a_signed_webhook_delivery_becomes_cases(fake: FakeX, registered: type[XProvider]) -> None:
    installation = _install(fake)
    client = Client()
    crc = client.get(f"/hooks/{installation.pk}", {"crc_token": "challenge_string"})
    assert crc.status_code == 200 and crc.json()["response_token"] == digest(SECRET, b"challenge_string")
    body = json.dumps([_event("post_mention_create"), _event("post_quote_create"),
                       fixture("activity_like_create.json")]).encode()
    unsigned = client.post(f"/hooks/{installation.pk}", body, content_type="application/json")
    assert unsigned.status_code == 401
    forged = client.post(f"/hooks/{installation.pk}", body, content_type="application/json",
                         headers={"X-Twitter-Webhooks-Signature": digest("not the secret", body)})
    assert forged.status_code == 401
    assert not RawPayload.objects.filter(installation=installation).exists()
    accepted = client.post(f"/hooks/{installation.pk}", body, content_type="application/json",
                           headers={"X-Twitter-Webhooks-Signature": digest(SECRET, body)})
    assert accepted.status_code == 202
    assert process_payload(accepted.json()["accepted"], datetime.now(UTC)) == "processed"
    assert _stored(installation) == ["2080765813578191303", "2090000000000000002"]
    assert _billed(installation) == {"post_read": (2, Decimal("0.010"))}
    # X delivers again (a retry): the same posts, nothing new, nothing billed twice the same day.
    again = client.post(f"/hooks/{installation.pk}", body, content_type="application/json",
                        headers={"X-Twitter-Webhooks-Signature": digest(SECRET, body)})
    process_payload(again.json()["accepted"], datetime.now(UTC))
    assert _stored(installation) == ["2080765813578191303", "2090000000000000002"]
    assert _billed(installation)["post_read"][1] == Decimal("0.010")
