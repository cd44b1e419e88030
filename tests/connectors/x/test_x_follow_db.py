"""The X provider's gaps closed, inside the desk: a poll whose keyword search fails keeps its mentions and shows
the failure on the installation's health; an edit of a post never stored becomes a post."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from fake_x import ACCESS, CLIENT_ID, OUR_ID, REFRESH, FakeX, fixture, tweet

from caredesk.cases.models import Post
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.builtin.x.webhook import digest
from caredesk.connectors.health import connector_health
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.processing import process_payload
from caredesk.connectors.tasks import poll_installation
from factories import make_brand

pytestmark = pytest.mark.django_db
SECRET = "consumer-secret"


def _install(fake: FakeX, **config: object) -> ConnectorInstallation:
    return do_create_installation(
        make_brand(), "x", "Brand on X", {"api": fake.url, "user_id": OUR_ID, **config},
        credentials={"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID,
                     "bearer_token": "app-bearer", "consumer_secret": SECRET})


def test_a_failed_search_keeps_the_polled_mentions_and_the_health_shows_it(fake: FakeX,
                                                                          registered: type[XProvider]) -> None:
    installation = _install(fake, keywords=["router"])
    fake.state.mentions = [tweet("700", "@TwitterDev my router is dead")]
    fake.fail("GET", "/2/tweets/search/recent", 403, {"title": "Forbidden", "detail": "Your plan has no search"})
    assert poll_installation(installation.pk, datetime.now(UTC)) == 1
    stored = ConnectorInstallation.objects.get(pk=installation.pk)
    assert list(Post.objects.values_list("external_id", flat=True)) == ["700"]
    assert stored.cursor == {"since_id": "700"}
    health = connector_health(stored)
    assert health["health"] == "degraded" and "Your plan has no search" in health["last_error"]
    assert health["consecutive_failures"] == 0 and health["retry_at"] is None  # the poll itself worked
    fake.state.search = [tweet("710", "router down")]
    poll_installation(installation.pk, datetime.now(UTC) + timedelta(minutes=10))  # search works again: healthy
    stored = ConnectorInstallation.objects.get(pk=installation.pk)
    assert connector_health(stored)["health"] == "ok" and stored.last_error == ""
    assert sorted(Post.objects.values_list("external_id", flat=True)) == ["700", "710"]


def test_a_webhook_edit_of_a_post_never_received_stores_it(fake: FakeX, registered: type[XProvider]) -> None:
    installation = _install(fake)
    edited = fixture("activity_post_mention_create.json")
    edited["data"]["filter"]["user_id"] = OUR_ID
    edited["data"]["payload"].update(id="2080765813578191999", text="hey @ExampleUser <b>(edited)</b>",
                                     edit_history_tweet_ids=["2080765813578191303", "2080765813578191999"])
    body = json.dumps(edited).encode()
    answer = Client().post(f"/hooks/{installation.pk}", body, content_type="application/json",
                           headers={"X-Twitter-Webhooks-Signature": digest(SECRET, body)})
    assert answer.status_code == 202
    assert process_payload(answer.json()["accepted"], datetime.now(UTC)) == "processed"
    post = Post.objects.get()
    assert post.external_id == "2080765813578191303"  # under the first id: later edits find it
    assert post.text == "hey @ExampleUser <b>(edited)</b>" and post.raw["latest_id"] == "2080765813578191999"
    assert post.case_id is not None
