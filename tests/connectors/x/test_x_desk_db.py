"""The X provider inside the desk: setup, a poll that renews the token and stores the rotated pair, and a reply
whose answer was lost that the outbox finds instead of posting twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from fake_x import ACCESS, CLIENT_ID, OUR_ID, REFRESH, FakeX, tweet

from caredesk.cases.models import Case
from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.setup import add_connection
from caredesk.connectors.tasks import poll_installation
from caredesk.inbox.presenters import get_composer
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import send_reply_now
from factories import make_brand, make_user

pytestmark = pytest.mark.django_db


def _connect(fake: FakeX) -> ConnectorInstallation:
    return add_connection(make_brand(), "x", "Brand on X", {"api": fake.url},
                          {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})


def test_a_poll_renews_the_token_and_the_desk_keeps_the_rotated_pair(fake: FakeX,
                                                                     registered: type[XProvider]) -> None:
    installation = _connect(fake)
    assert installation.own_account_ids == [OUR_ID] and installation.own_handles == ["TwitterDev"]
    assert installation.config["user_id"] == OUR_ID  # kept at setup: polls need not ask who we are
    asked = len(fake.requests_to("GET", "/2/users/me"))
    fake.state.mentions = [tweet("700", "@TwitterDev my router is dead")]
    fake.state.access_tokens = {"someone-else"}  # ours expired
    poll_installation(installation.pk, datetime.now(UTC))
    stored = ConnectorInstallation.objects.get(pk=installation.pk)
    assert stored.get_credentials()["refresh_token"] == "refresh-1"
    assert stored.get_credentials()["access_token"] == "access-1"
    assert stored.cursor == {"since_id": "700"}
    assert len(fake.requests_to("GET", "/2/users/me")) == asked
    assert Case.objects.get().posts.get().external_id == "700"
    # The next expiry renews with the stored, rotated refresh token.
    fake.state.access_tokens = {"someone-else"}
    fake.state.mentions.append(tweet("701", "@TwitterDev still dead"))
    assert poll_installation(installation.pk, datetime.now(UTC) + timedelta(hours=1)) == 1
    assert ConnectorInstallation.objects.get(pk=installation.pk).get_credentials()["refresh_token"] == "refresh-2"


def test_a_reply_whose_answer_was_lost_is_found_not_posted_twice(fake: FakeX, registered: type[XProvider]) -> None:
    installation = _connect(fake)
    fake.state.mentions = [tweet("800", "@TwitterDev my order never came")]
    poll_installation(installation.pk, datetime.now(UTC))
    case = Case.objects.get()
    with transaction.atomic():
        reply = do_queue_reply(case, case.posts.get(), "Sorry! DM us the order number.", make_user(),
                               datetime.now(UTC))
    fake.fail("POST", "/2/tweets", 503, {"title": "Service Unavailable"}, after_effect=True)
    assert send_reply_now(reply.pk) == Reply.State.SENT
    posted = fake.requests_to("POST", "/2/tweets")
    assert len(posted) == 1
    assert json.loads(posted[0].body)["reply"] == {"in_reply_to_tweet_id": "800"}
    assert Reply.objects.get().external_id == fake.state.own_posts[0]["id"]


def test_a_dm_to_an_author_who_never_wrote_to_the_brand_is_refused_with_its_reason(
        fake: FakeX, registered: type[XProvider]) -> None:
    from caredesk.connectors.actions import lock_installation
    from caredesk.connectors.base import NormalizedAuthor, NormalizedPost
    from caredesk.ingest.pipeline import ingest_posts
    from caredesk.outbox.actions import ReplyError

    installation = add_connection(make_brand(), "x", "Brand on X", {"api": fake.url, "direct_messages": True},
                                  {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})
    heard = NormalizedPost(external_id="1500", author=NormalizedAuthor("944480690", "FloodSocial"),
                           text="acme routers are awful", created_at=datetime.now(UTC), summoned=False,
                           matched_keywords=("acme",))
    with transaction.atomic():
        ingest_posts(lock_installation(installation.pk), "x", [heard], datetime.now(UTC))
    case = Case.objects.get()
    with pytest.raises(ReplyError, match="forbid unsolicited direct messages"), transaction.atomic():
        do_queue_reply(case, case.posts.get(), "Can we help? DM us.", make_user(), datetime.now(UTC), is_direct=True)
    assert Reply.objects.count() == 0
    assert fake.requests_to("POST", "/2/dm_conversations/with/944480690/messages") == []


def test_a_dm_is_answered_privately_and_billed_as_a_dm(fake: FakeX, registered: type[XProvider]) -> None:
    from caredesk.connectors.costs.models import UsageEntry

    installation = add_connection(make_brand(), "x", "Brand on X", {"api": fake.url, "direct_messages": True},
                                  {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})
    fake.state.dm_events = [{"id": "1600", "event_type": "MessageCreate", "text": "my invoice is wrong",
                             "sender_id": "944480690", "dm_conversation_id": f"944480690-{OUR_ID}",
                             "created_at": "2026-11-23T10:00:00.000Z"}]
    poll_installation(installation.pk, datetime.now(UTC))
    case = Case.objects.get()
    post = case.posts.get()
    assert post.is_direct and post.text == "my invoice is wrong"
    composer = get_composer(case)
    assert (composer.limit, composer.unit, composer.refusal) == (10_000, "characters", "")  # a DM's own limit
    with transaction.atomic():
        reply = do_queue_reply(case, post, "Sorry! Fixed: " + "x" * 400, make_user(), datetime.now(UTC))
    assert reply.is_direct  # a DM is answered by DM, and may be longer than a post
    assert send_reply_now(reply.pk) == Reply.State.SENT
    [sent] = fake.requests_to("POST", "/2/dm_conversations/with/944480690/messages")
    assert json.loads(sent.body)["text"].startswith("Sorry! Fixed")
    assert fake.requests_to("POST", "/2/tweets") == []
    assert UsageEntry.objects.get(installation=installation, operation="dm_create").units_billed == 1
    assert UsageEntry.objects.get(installation=installation, operation="dm_event_read").units_billed == 1


def _hold_poll_lock(installation_id: int) -> object:
    """Another process (a poll) holding the installation's poll lock: a session of its own."""
    import psycopg
    from django.db import connection

    from caredesk.connectors.tasks import _POLL_LOCK_NAMESPACE

    s = connection.settings_dict
    other = psycopg.connect(dbname=s["NAME"], host=s["HOST"] or None, port=s["PORT"] or None, user=s["USER"],
                            password=s["PASSWORD"] or None, autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s, %s)", [_POLL_LOCK_NAMESPACE, installation_id])
    return other


def test_a_send_renews_an_expired_token_and_the_desk_keeps_the_rotated_pair(
        fake: FakeX, registered: type[XProvider]) -> None:
    from caredesk.connectors.tasks import _try_lock, _unlock

    installation = _connect(fake)
    fake.state.mentions = [tweet("1700", "@TwitterDev my order never came")]
    poll_installation(installation.pk, datetime.now(UTC))
    case = Case.objects.get()
    with transaction.atomic():
        reply = do_queue_reply(case, case.posts.get(), "Sorry! On it.", make_user(), datetime.now(UTC))
    fake.state.access_tokens = {"someone-else"}  # ours expired
    assert send_reply_now(reply.pk) == Reply.State.SENT
    assert len(fake.state.own_posts) == 1  # refused once with 401 (nothing published), renewed, then posted
    assert [r.path for r in fake.state.requests[-3:]] == ["/2/tweets", "/2/oauth2/token", "/2/tweets"]
    stored = ConnectorInstallation.objects.get(pk=installation.pk).get_credentials()
    assert stored["refresh_token"] == "refresh-1" and stored["access_token"] == "access-1"
    assert _try_lock(installation.pk)  # the send let go of the poll lock
    _unlock(installation.pk)
    # The next poll renews with the pair the send stored.
    fake.state.access_tokens = {"someone-else"}
    fake.state.mentions.append(tweet("1701", "@TwitterDev thanks"))
    assert poll_installation(installation.pk, datetime.now(UTC) + timedelta(hours=1)) == 1
    assert ConnectorInstallation.objects.get(pk=installation.pk).get_credentials()["refresh_token"] == "refresh-2"


def test_while_a_poll_holds_the_installation_a_send_does_not_spend_the_refresh_token(
        fake: FakeX, registered: type[XProvider]) -> None:
    installation = _connect(fake)
    fake.state.mentions = [tweet("1800", "@TwitterDev my order never came")]
    poll_installation(installation.pk, datetime.now(UTC))
    case = Case.objects.get()
    with transaction.atomic():
        reply = do_queue_reply(case, case.posts.get(), "Sorry! On it.", make_user(), datetime.now(UTC))
    fake.state.access_tokens = {"someone-else"}
    other = _hold_poll_lock(installation.pk)
    try:
        assert send_reply_now(reply.pk) == Reply.State.QUEUED  # waits for the poll to renew the token
    finally:
        other.close()  # type: ignore[attr-defined]
    assert fake.requests_to("POST", "/2/oauth2/token") == [] and REFRESH in fake.state.refresh_tokens
    assert fake.state.own_posts == []  # X answered 401: nothing was published
    assert "the platform asked to wait" in Reply.objects.get().error


def test_polls_keep_inside_xs_rate_limit_whatever_the_worker_interval(fake: FakeX, registered: type[XProvider],
                                                                      settings: object) -> None:
    # The worker's default interval (2 s) would ask X's mentions timeline 450 times in 15 minutes: X allows 300.
    settings.CAREDESK_POLL_INTERVAL = 2  # type: ignore[attr-defined]
    installation = _connect(fake)
    fake.state.mentions = [tweet("900", "@TwitterDev hello?")]
    start = datetime.now(UTC)
    assert poll_installation(installation.pk, start) == 1
    asked = len(fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions"))
    assert poll_installation(installation.pk, start + timedelta(seconds=5)) == 0
    assert len(fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions")) == asked
    fake.state.mentions.append(tweet("901", "@TwitterDev still there?"))
    assert poll_installation(installation.pk, start + timedelta(seconds=XProvider.min_poll_seconds)) == 1
