"""X's 24-hour compliance against the fake X server: the posts X reports as deleted (``errors[]`` with
``resource-not-found``) or edited (``edit_history_tweet_ids``) become changes; inside the desk, a sweep removes a
deleted post's text, replaces an edited one's, bills its reads, and stops at the budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fake_x import ACCESS, CLIENT_ID, OUR_ID, REFRESH, FakeX, tweet

from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.base import PostDeleted, PostEdited
from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.compliance import due_installation_ids, sweep_installation
from caredesk.connectors.costs.models import UsageEntry
from caredesk.connectors.costs.prices import Operation
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.setup import add_connection
from caredesk.connectors.tasks import poll_installation
from factories import make_brand

Make = Callable[..., XProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_deleted_and_edited_posts_become_changes(make_provider: Make, fake: FakeX) -> None:
    fake.state.mentions = [tweet("100", "@TwitterDev kept"), tweet("101", "@TwitterDev gone"),
                           tweet("102", "@TwitterDev my bill is wrong", edit_history_tweet_ids=["102", "105"])]
    fake.state.tweets["105"] = tweet("105", "@TwitterDev my bill is wrong, twice", conversation_id="102",
                                     edit_history_tweet_ids=["102", "105"])
    fake.state.deleted = {"101"}
    result = make_provider(keywords=["twice"]).compliance_sweep(["100", "101", "102", "not-a-number"], NOW)
    deleted = [c for c in result.changes if isinstance(c, PostDeleted)]
    edited = [c for c in result.changes if isinstance(c, PostEdited)]
    assert deleted == [PostDeleted("101")]
    [edit] = edited
    assert edit.post.external_id == "102" and edit.post.text == "@TwitterDev my bill is wrong, twice"
    assert edit.post.matched_keywords == ("twice",)
    first, second = fake.requests_to("GET", "/2/tweets")
    assert first.query["ids"] == "100,101,102"
    assert "edit_history_tweet_ids" in first.query["tweet.fields"] and first.query["expansions"] == "author_id"
    assert second.query["ids"] == "105"
    assert [(u.operation, u.resource_ids) for u in result.usage] == [
        (Operation.POST_READ, ("100", "102")), (Operation.POST_READ, ("105",))]
    assert result.posts == [] and result.cursor == {}


def test_a_protected_or_suspended_authors_post_goes_too(make_provider: Make, fake: FakeX) -> None:
    fake.fail("GET", "/2/tweets", 200, {"errors": [{
        "value": "200", "detail": "Sorry, you are not authorized to see the Tweet with ids: [200].",
        "title": "Authorization Error", "resource_type": "tweet", "parameter": "ids", "resource_id": "200",
        "type": "https://api.twitter.com/2/problems/not-authorized-for-resource"}]})
    assert make_provider().compliance_sweep(["200"], NOW).changes == [PostDeleted("200")]


def test_at_most_a_hundred_ids_per_lookup(make_provider: Make) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        make_provider().compliance_sweep([str(i) for i in range(101)], NOW)
    assert make_provider().compliance_sweep([], NOW).changes == []


@pytest.mark.django_db
class TestInTheDesk:
    def _connect(self, fake: FakeX) -> ConnectorInstallation:
        return add_connection(make_brand(), "x", "Brand on X", {"api": fake.url},
                              {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})

    def test_a_post_deleted_on_x_is_gone_from_the_desk(self, fake: FakeX, registered: type[XProvider]) -> None:
        installation = self._connect(fake)
        secret = "@TwitterDev my card 4111 is declined <script>alert(1)</script>"
        fake.state.mentions = [tweet("700", secret), tweet("701", "@TwitterDev still here")]
        now = datetime.now(UTC)
        poll_installation(installation.pk, now)
        assert due_installation_ids(now) == [installation.pk]  # never swept
        fake.state.deleted = {"700"}
        report = sweep_installation(installation.pk, now)
        assert report is not None and (report.checked, report.deleted, report.edited) == (2, 1, 0)
        gone = Post.objects.get(external_id="700")
        assert gone.text == "" and gone.raw == {} and gone.deleted_at == now
        assert Post.objects.get(external_id="701").text == "@TwitterDev still here"
        assert not Post.objects.filter(text__contains="4111").exists()
        assert not Case.objects.filter(subject__contains="4111").exists()
        assert Activity.objects.filter(kind=Activity.Kind.POST_DELETED).count() == 1
        stored = ConnectorInstallation.objects.get(pk=installation.pk)
        assert stored.compliance_swept_at == now
        assert due_installation_ids(now + timedelta(hours=23)) == []
        assert due_installation_ids(now + timedelta(hours=24)) == [installation.pk]
        [entry] = UsageEntry.objects.filter(installation=installation, operation=Operation.POST_READ)
        assert entry.units_billed == 1 and entry.cost == Decimal("0.005")  # only 701 came back
        # A second sweep asks only about what is still there.
        sweep_installation(installation.pk, now)
        assert fake.requests_to("GET", "/2/tweets")[-1].query["ids"] == "701"

    def test_an_edit_on_x_replaces_the_text_once(self, fake: FakeX, registered: type[XProvider]) -> None:
        installation = self._connect(fake)
        fake.state.mentions = [tweet("800", "@TwitterDev typo")]
        now = datetime.now(UTC)
        poll_installation(installation.pk, now)
        fake.state.mentions[0]["edit_history_tweet_ids"] = ["800", "801"]
        fake.state.tweets["801"] = tweet("801", "@TwitterDev fixed", edit_history_tweet_ids=["800", "801"])
        assert sweep_installation(installation.pk, now).edited == 1  # type: ignore[union-attr]
        post = Post.objects.get(external_id="800")
        assert post.text == "@TwitterDev fixed" and post.edited_at == now and post.summoned
        later = now + timedelta(days=1)
        assert sweep_installation(installation.pk, later).edited == 0  # type: ignore[union-attr]
        assert Post.objects.get(external_id="800").edited_at == now

    def test_the_sweep_stops_at_the_budget(self, fake: FakeX, registered: type[XProvider]) -> None:
        installation = self._connect(fake)
        fake.state.mentions = [tweet("900", "@TwitterDev hello")]
        now = datetime.now(UTC)
        poll_installation(installation.pk, now)
        ConnectorInstallation.objects.filter(pk=installation.pk).update(monthly_budget=Decimal("0.00"))
        fake.state.deleted = {"900"}
        report = sweep_installation(installation.pk, now)
        assert report is not None and "budget" in report.stopped
        assert fake.requests_to("GET", "/2/tweets") == []
        assert Post.objects.get(external_id="900").deleted_at is None
        stored = ConnectorInstallation.objects.get(pk=installation.pk)
        assert stored.compliance_swept_at is None and "budget" in stored.last_error

    def test_a_sweep_renews_an_expired_token_and_keeps_the_rotated_pair(self, fake: FakeX,
                                                                       registered: type[XProvider]) -> None:
        installation = self._connect(fake)
        fake.state.mentions = [tweet("950", "@TwitterDev hi")]
        now = datetime.now(UTC)
        poll_installation(installation.pk, now)
        fake.state.access_tokens = {"someone-else"}
        sweep_installation(installation.pk, now)
        assert ConnectorInstallation.objects.get(pk=installation.pk).get_credentials()["refresh_token"] == "refresh-1"
        assert OUR_ID  # the brand's own id is kept from setup


@pytest.mark.django_db
def test_a_sweep_lets_polls_in_between_and_gives_way_when_they_keep_the_installation(
        fake: FakeX, registered: type[XProvider], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_x_desk_db import _hold_poll_lock

    from caredesk.connectors import compliance

    installation = add_connection(make_brand(), "x", "Brand on X", {"api": fake.url, "compliance_days": 2},
                                  {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})
    fake.state.mentions = [tweet("990", "@TwitterDev hi")]
    now = datetime.now(UTC)
    poll_installation(installation.pk, now)
    monkeypatch.setattr(compliance, "LOCK_WAIT_SECONDS", 0.01)
    other = _hold_poll_lock(installation.pk)
    try:
        report = sweep_installation(installation.pk, now)
    finally:
        other.close()  # type: ignore[attr-defined]
    assert report is not None and report.stopped == compliance.BUSY
    assert fake.requests_to("GET", "/2/tweets") == []
    assert ConnectorInstallation.objects.get(pk=installation.pk).compliance_swept_at is None
    # Posts received before the connection's window are not asked about (each check is a billed read).
    assert sweep_installation(installation.pk, now + timedelta(days=3)).checked == 0  # type: ignore[union-attr]


@pytest.mark.django_db
def test_the_hourly_job_defers_one_sweep_per_due_connection(fake: FakeX, registered: type[XProvider]) -> None:
    from django.db import connection

    from caredesk.connectors.compliance import defer_sweeps

    installation = add_connection(make_brand(), "x", "Brand on X", {"api": fake.url},
                                  {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})
    now = datetime.now(UTC)
    assert defer_sweeps(now) == 1
    assert defer_sweeps(now) == 0  # its sweep has not started yet
    with connection.cursor() as cursor:
        cursor.execute("SELECT task_name, args::text FROM procrastinate_jobs WHERE queueing_lock = %s",
                       [f"compliance:{installation.pk}"])
        [(task, args)] = cursor.fetchall()
    assert task == "connectors.compliance_sweep" and json.loads(args) == {"installation_id": installation.pk}
