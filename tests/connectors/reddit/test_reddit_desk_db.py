"""The Reddit provider inside the desk: setup (with the notice that Reddit must approve API access), a poll that
lands messages, mentions and keyword posts as cases, and a reply through the outbox whose answer was lost, found
instead of posted twice."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from datetime import UTC, datetime

import pytest
from django.db import transaction
from django.test import Client
from fake_reddit import OUR_ID, OUR_NAME, SCRIPT_APP, FakeReddit, comment, config_for, message, post

from caredesk.cases.models import Post
from caredesk.connectors.builtin.reddit import RedditProvider
from caredesk.connectors.commands import cmd_add
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.setup import add_connection
from caredesk.connectors.tasks import poll_installation
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import send_reply_now
from factories import make_brand, make_user

pytestmark = pytest.mark.django_db
LISTEN = {"subreddits": ["HomeNetworking"], "keywords": ["acme router"]}


def _connect(fake: FakeReddit) -> ConnectorInstallation:
    return add_connection(make_brand(), "reddit", "Brand on Reddit", config_for(fake, **LISTEN), SCRIPT_APP)


def test_a_poll_lands_messages_mentions_and_keyword_posts_as_cases(fake: FakeReddit,
                                                                   registered: type[RedditProvider]) -> None:
    installation = _connect(fake)
    assert installation.own_handles == [OUR_NAME] and installation.own_account_ids == [f"t2_{OUR_ID}"]
    assert installation.config["username"] == OUR_NAME  # kept at setup: polls need not ask who we are
    fake.state.inbox = [message("dm1", "My bill is wrong <script>alert(1)</script>", subject="billing")]
    fake.state.mentions = [comment("mn1", "u/acme_care my router is dead", "t3_q1", kind="username_mention")]
    fake.state.subreddits["homenetworking"] = [post("q2", "Acme router drops every night", subreddit="HomeNetworking"),
                                               post("q3", "unrelated", subreddit="HomeNetworking")]
    assert poll_installation(installation.pk, datetime.now(UTC)) == 3
    posts = {p.external_id: p for p in Post.objects.all()}
    assert sorted(posts) == ["t1_mn1", "t3_q2", "t4_dm1"]
    assert posts["t4_dm1"].is_direct and posts["t4_dm1"].summoned
    assert posts["t4_dm1"].text == "billing\n\nMy bill is wrong <script>alert(1)</script>"  # stored as written
    agent = Client()
    agent.force_login(make_user("ragent", role="agent", brands=[installation.brand]))
    page = agent.get(f"/cases/{posts['t4_dm1'].case_id}/").content.decode()
    assert "My bill is wrong &lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert not posts["t1_mn1"].is_direct and posts["t1_mn1"].summoned
    assert not posts["t3_q2"].summoned and posts["t3_q2"].matched_keywords == ["acme router"]
    stored = ConnectorInstallation.objects.get(pk=installation.pk)
    assert stored.rate_limit_remaining == 600 - len(fake.api_requests())
    assert stored.get_credentials()["access_token"].startswith("access-")  # the hour-long token, kept
    assert set(stored.cursor["sources"]) == {"inbox", "mentions", "r/HomeNetworking"}
    tokens = len(fake.requests_to("POST", "/api/v1/access_token"))
    assert poll_installation(installation.pk, datetime.now(UTC)) in (0, None)  # too soon, or nothing new
    assert len(fake.requests_to("POST", "/api/v1/access_token")) == tokens


def test_a_reply_to_a_keyword_post_whose_answer_was_lost_is_found_not_posted_twice(
        fake: FakeReddit, registered: type[RedditProvider]) -> None:
    installation = _connect(fake)
    fake.state.subreddits["homenetworking"] = [post("q9", "Acme router broke", subreddit="HomeNetworking")]
    poll_installation(installation.pk, datetime.now(UTC))
    lead = Post.objects.get(external_id="t3_q9")
    assert not lead.summoned  # Reddit's rules allow answering it all the same
    with transaction.atomic():
        reply = do_queue_reply(lead.case, lead, "Sorry! Send us a **message** with your account number.",
                               make_user(), datetime.now(UTC))
    fake.fail("POST", "/api/comment", 503, {"message": "Service Unavailable"}, after_effect=True)
    assert send_reply_now(reply.pk) == Reply.State.SENT
    posted = fake.requests_to("POST", "/api/comment")
    assert len(posted) == 1 and posted[0].form["thing_id"] == "t3_q9"
    assert Reply.objects.get().external_id == fake.state.comments[0]["data"]["name"]


def test_the_setup_form_says_reddit_must_approve_api_access(registered: type[RedditProvider]) -> None:
    brand = make_brand()
    client = Client()
    client.force_login(make_user("radmin", role="admin", brands=[brand]))
    fields = client.get("/settings/connections/fields?provider=reddit").content.decode()
    assert "Reddit must approve API access first" in fields and "Responsible Builder Policy" in fields
    assert 'name="config-app_id"' in fields and 'name="credentials-client_id"' in fields
    assert 'name="credentials-access_token"' not in fields  # kept by the desk, never asked for
    assert "Reddit must approve API access first" not in \
        client.get("/settings/connections/fields?provider=replay").content.decode()


def test_connector_add_says_it_too(fake: FakeReddit, registered: type[RedditProvider],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    brand = make_brand()
    args = argparse.Namespace(provider="reddit", brand=brand.slug, name="r", config=json.dumps(config_for(fake)),
                              credentials=json.dumps(SCRIPT_APP), no_check=False)
    assert cmd_add(args, lambda _args: nullcontext()) == 0
    out = capsys.readouterr()
    assert "Reddit must approve API access first" in out.err
    assert f"as @{OUR_NAME}" in out.out
