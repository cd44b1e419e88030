"""A brand's retention policy: validation, redaction and deletion of exactly the closed cases past the cutoff of
that brand, raw payloads (never pending ones), resuming an interrupted run, the report, and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from django.db import connection, transaction

from caredesk.accounts.models import Brand
from caredesk.cases.actions import do_add_note
from caredesk.cases.models import Activity, Author, Case, Note, Post
from caredesk.connectors.builtin.replay.provider import ReplayProvider
from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.connectors.registry import register_provider, unregister_provider
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply
from caredesk.retention import partitions
from caredesk.retention.actions import (
    REDACTED_SUBJECT,
    RetentionError,
    do_set_retention,
    drop_expired_payload_partitions,
    run_all,
    run_retention,
)
from caredesk.retention.models import RetentionRun
from factories import T0, make_brand, make_case, make_installation, make_user

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(days=60)  # the run's clock; a 30-day policy cuts at T0 + 30 days
OLD = T0 + timedelta(hours=2)
RECENT = NOW - timedelta(days=2)


class LimitedProvider(ReplayProvider):
    key = "retention_limited"
    max_content_retention_days: ClassVar[int | None] = 30


@pytest.fixture
def limited() -> Iterator[None]:
    register_provider(LimitedProvider)
    yield
    unregister_provider(LimitedProvider.key)


def _case(installation: ConnectorInstallation, status: str, changed: datetime, text: str = "") -> Case:
    case = make_case(installation, text or "my router has been blinking red since this morning, please help")
    Case.objects.filter(pk=case.pk).update(status=status, updated_at=changed)
    case.refresh_from_db()
    return case


@pytest.fixture
def nimbus() -> ConnectorInstallation:
    installation = make_installation(make_brand("Nimbus"))
    do_set_retention(installation.brand, 30, "redact", T0)
    return installation


@pytest.fixture
def skyway() -> ConnectorInstallation:
    return make_installation(make_brand("Skyway"))  # no policy: keeps everything


def test_a_bad_policy_is_refused_with_a_clear_message(nimbus: ConnectorInstallation, limited: None) -> None:
    brand = nimbus.brand
    with pytest.raises(RetentionError, match="one of redact, delete"):
        do_set_retention(brand, 30, "shred", NOW)
    with pytest.raises(RetentionError, match="between 7 and 3650 days, not 2"):
        do_set_retention(brand, 2, "delete", NOW)
    ConnectorInstallation.objects.create(brand=brand, provider_key=LimitedProvider.key, name="limited")
    with pytest.raises(RetentionError, match="retention_limited's terms allow keeping its content 30 days at most"):
        do_set_retention(brand, 90, "redact", NOW)
    with pytest.raises(RetentionError, match="not forever"):
        do_set_retention(brand, None, "redact", NOW)
    brand.refresh_from_db()
    assert (brand.retention_days, brand.retention_action) == (30, "redact")  # nothing changed by a refusal
    do_set_retention(brand, 14, "delete", NOW)
    brand.refresh_from_db()
    assert (brand.retention_days, brand.retention_action, brand.retention_set_at) == (14, "delete", NOW)


def test_redact_empties_only_the_old_closed_cases_of_that_brand(
    nimbus: ConnectorInstallation, skyway: ConnectorInstallation
) -> None:
    old_closed = _case(nimbus, "resolved", OLD)
    old_open = _case(nimbus, "open", OLD)
    old_pending = _case(nimbus, "pending", OLD)
    recent_closed = _case(nimbus, "resolved", RECENT)
    other_brand = _case(skyway, "resolved", OLD)
    agent = make_user(brands=[nimbus.brand])
    post = old_closed.posts.get()
    with transaction.atomic():
        do_queue_reply(old_closed, post, "sorry to hear that, we are on it", agent, OLD)
    Case.objects.filter(pk=old_closed.pk).update(status="resolved", updated_at=OLD)

    outcome = run_retention(nimbus.brand, NOW)
    assert outcome is not None and outcome.finished

    post.refresh_from_db()
    assert (post.text, post.raw, post.triage, post.deleted_at) == ("", {}, {}, None)
    assert Post.objects.filter(pk=post.pk).exists()  # the row stays: the thread still reads in order
    old_closed.refresh_from_db()
    assert old_closed.subject == REDACTED_SUBJECT and old_closed.updated_at == OLD  # its clock not restarted
    assert Reply.objects.get(case=old_closed).text == ""
    assert post.author.handle  # the handle is kept
    for untouched in (old_open, old_pending, recent_closed, other_brand):
        kept = untouched.posts.get()
        assert kept.text and kept.triage, untouched.status
        untouched.refresh_from_db()
        assert untouched.subject != REDACTED_SUBJECT
    run = outcome.run
    assert run.status == "done" and run.cutoff == NOW - timedelta(days=30)
    assert run.counts["posts_redacted"] == 1 and run.counts["cases_redacted"] == 1
    assert run.counts["replies_redacted"] == 1
    assert "posts redacted 1" in run.summary()
    # Skyway keeps everything: no run for it, nothing of it touched.
    assert run_retention(skyway.brand, NOW) is None


def test_delete_removes_the_case_its_posts_replies_notes_and_timeline_and_nothing_else(
    nimbus: ConnectorInstallation, skyway: ConnectorInstallation
) -> None:
    do_set_retention(nimbus.brand, 30, "delete", T0)
    old_closed = _case(nimbus, "resolved", OLD)
    old_open = _case(nimbus, "open", OLD)
    other_brand = _case(skyway, "resolved", OLD)
    agent = make_user(brands=[nimbus.brand])
    with transaction.atomic():
        do_queue_reply(old_closed, old_closed.posts.get(), "sorry to hear that, we are on it", agent, OLD)
        do_add_note(old_closed, agent, "called them back", OLD)
    Case.objects.filter(pk=old_closed.pk).update(status="resolved", updated_at=OLD)
    author = old_closed.posts.get().author_id
    activities = Activity.objects.filter(case=old_closed).count()

    outcome = run_retention(nimbus.brand, NOW)
    assert outcome is not None

    assert not Case.objects.filter(pk=old_closed.pk).exists()
    assert not Post.objects.filter(case_id=old_closed.pk).exists()
    assert not Activity.objects.filter(case_id=old_closed.pk).exists()
    assert not Note.objects.filter(case_id=old_closed.pk).exists()
    assert not Reply.objects.filter(case_id=old_closed.pk).exists()
    assert Author.objects.filter(pk=author).exists()  # people are the brand's records: not this policy's
    assert Case.objects.filter(pk__in=[old_open.pk, other_brand.pk]).count() == 2
    assert outcome.run.counts == {
        "cases_skipped": 0, "replies_deleted": 1, "posts_deleted": 1, "cases_deleted": 1,
        "activities_deleted": activities, "notes_deleted": 1, "payloads_deleted": 0,
    }


def _loose_post(installation: ConnectorInstallation, like: Post, at: datetime) -> Post:
    """A post in no case (the brand's own, say), made directly: ingest decides for itself which posts get none."""
    return Post.objects.create(installation=installation, external_id=f"loose-{at:%s}-{like.pk}", author=like.author,
                               text="our own announcement", raw={"id": "x"}, triage={"topic": "x"}, created_at=at,
                               received_at=at)


@pytest.mark.parametrize("action", ["redact", "delete"])
def test_posts_in_no_case_past_the_cutoff_are_redacted_or_deleted_and_recent_ones_kept(
    nimbus: ConnectorInstallation, skyway: ConnectorInstallation, action: str
) -> None:
    do_set_retention(nimbus.brand, 30, action, T0)
    like = _case(nimbus, "open", RECENT).posts.get()
    old, recent = _loose_post(nimbus, like, OLD), _loose_post(nimbus, like, RECENT)
    other = _loose_post(skyway, _case(skyway, "open", RECENT).posts.get(), OLD)
    outcome = run_retention(nimbus.brand, NOW)
    assert outcome is not None
    if action == "redact":
        old.refresh_from_db()
        assert (old.text, old.raw, old.triage) == ("", {}, {})
        assert outcome.run.counts["posts_redacted"] == 1
    else:
        assert not Post.objects.filter(pk=old.pk).exists()
        assert outcome.run.counts["posts_deleted"] == 1
    for kept in (recent, other):
        kept.refresh_from_db()
        assert kept.text == "our own announcement"


def _payload(installation: ConnectorInstallation, at: datetime, status: str) -> RawPayload:
    return RawPayload.objects.create(installation=installation, source="webhook", received_at=at, body=b"{}",
                                     status=status)


def test_raw_payloads_past_the_cutoff_go_but_pending_ones_recent_ones_and_other_brands_stay(
    nimbus: ConnectorInstallation, skyway: ConnectorInstallation
) -> None:
    gone = [_payload(nimbus, OLD, "processed"), _payload(nimbus, OLD, "failed")]
    kept = [_payload(nimbus, OLD, "pending"), _payload(nimbus, RECENT, "failed"), _payload(nimbus, RECENT,
            "processed"), _payload(skyway, OLD, "processed"), _payload(skyway, OLD, "failed")]
    outcome = run_retention(nimbus.brand, NOW)
    assert outcome is not None and outcome.run.counts["payloads_deleted"] == 2
    assert not RawPayload.objects.filter(pk__in=[p.pk for p in gone]).exists()
    assert RawPayload.objects.filter(pk__in=[p.pk for p in kept]).count() == len(kept)


def test_an_interrupted_run_resumes_where_it_stopped_with_the_same_cutoff(nimbus: ConnectorInstallation) -> None:
    cases = [_case(nimbus, "resolved", OLD + timedelta(minutes=i)) for i in range(3)]
    first = run_retention(nimbus.brand, NOW, batch_size=1, max_batches=1)
    assert first is not None and not first.finished
    assert first.run.status == "running" and first.run.counts["cases_redacted"] == 1
    assert Case.objects.filter(pk=cases[0].pk, subject=REDACTED_SUBJECT).exists()
    assert not Case.objects.filter(pk__in=[cases[1].pk, cases[2].pk], subject=REDACTED_SUBJECT).exists()
    # The next day's job takes the same run up (same cutoff), not a new one.
    later = run_retention(nimbus.brand, NOW + timedelta(days=1), batch_size=1)
    assert later is not None and later.finished and later.run.pk == first.run.pk
    assert later.run.cutoff == first.run.cutoff
    assert later.run.counts["cases_redacted"] == 3 and later.run.counts["posts_redacted"] == 3
    assert RetentionRun.objects.filter(brand=nimbus.brand).count() == 1
    # A policy changed mid-run stops that run: the new policy starts from the beginning.
    stopped = run_retention(nimbus.brand, NOW + timedelta(days=1), batch_size=1, max_batches=1)
    assert stopped is not None and not stopped.finished
    do_set_retention(nimbus.brand, 40, "redact", NOW + timedelta(days=1))
    stopped.run.refresh_from_db()
    assert (stopped.run.status, stopped.run.error) == ("failed", "stopped: the policy changed")
    RetentionRun.objects.filter(pk=stopped.run.pk).delete()
    do_set_retention(nimbus.brand, 30, "redact", T0)
    # The following run starts after what this one covered, and finds nothing left.
    nxt = run_retention(nimbus.brand, NOW + timedelta(days=2))
    assert nxt is not None and nxt.run.since == first.run.cutoff
    assert not any(nxt.run.counts.values())


def test_a_case_reopened_after_it_was_listed_is_skipped(nimbus: ConnectorInstallation) -> None:
    case = _case(nimbus, "resolved", OLD)
    # The reopening that happens between the listing and the lock, simulated by changing the case's state.
    from caredesk.retention import actions

    real = actions._closed_cases

    def listed_then_reopened(run: RetentionRun, limit: int) -> list[tuple[int, datetime]]:
        found = real(run, limit)
        Case.objects.filter(pk=case.pk).update(status="open", updated_at=NOW)
        return found

    actions._closed_cases = listed_then_reopened  # type: ignore[assignment]
    try:
        outcome = run_retention(nimbus.brand, NOW)
    finally:
        actions._closed_cases = real  # type: ignore[assignment]
    assert outcome is not None and outcome.run.counts["cases_skipped"] == 1
    assert case.posts.get().text


def test_run_all_applies_each_policy_and_drops_payload_months_past_every_policy(
    nimbus: ConnectorInstallation
) -> None:
    pending = _payload(nimbus, OLD, "pending")
    with transaction.atomic(), connection.cursor() as cursor:
        partitions.ensure_partitions(cursor, "connectors_rawpayload", OLD, OLD)  # the payload moves there
        name = partitions.partition_for("connectors_rawpayload", OLD).name
        assert drop_expired_payload_partitions(cursor, NOW) == []  # not while any row there is pending
    RawPayload.objects.filter(pk=pending.pk).update(status="processed")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's own rows: no FK check left pending
        # Skyway (an installation, no policy) keeps everything: no month may be dropped.
        other = make_installation(make_brand("Skyway"))
        assert drop_expired_payload_partitions(cursor, NOW + timedelta(days=40)) == []
        do_set_retention(other.brand, 30, "redact", NOW)
        dropped = drop_expired_payload_partitions(cursor, NOW + timedelta(days=40))
        assert name in dropped  # (and the empty months after it, up to the oldest cutoff)
        left = [p.name for p in partitions.list_partitions(cursor, "connectors_rawpayload")]
        assert partitions.partition_for("connectors_rawpayload", NOW + timedelta(days=10)).name in left  # the cutoff's
    assert not RawPayload.objects.filter(pk=pending.pk).exists()
    runs = run_all(NOW)
    assert {r.brand.slug for r in runs} == {"nimbus", "skyway"}


pytestmark_cli = pytest.mark.django_db(transaction=True)


@pytestmark_cli
def test_the_cli_sets_refuses_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from caredesk.cli import main

    installation = make_installation(make_brand("Nimbus"))
    _case(installation, "resolved", datetime.now(UTC) - timedelta(days=40))
    args = ["--data-dir", str(tmp_path)]
    assert main(["retention", "set", "nimbus", "--days", "3", *args]) == 2
    assert "between 7 and 3650 days, not 3" in capsys.readouterr().err
    assert main(["retention", "set", "nowhere", "--days", "30", *args]) == 2
    assert "no brand 'nowhere'" in capsys.readouterr().err
    assert main(["retention", "set", "nimbus", "--days", "30", "--action", "delete", *args]) == 0
    assert capsys.readouterr().out == "brand nimbus: delete after 30 days\n"
    assert main(["retention", "run", "nimbus", *args]) == 0
    assert "nimbus: delete after 30 days" in capsys.readouterr().out
    assert main(["retention", "report", *args]) == 0
    out = capsys.readouterr().out
    assert "\tnimbus\tdone\tdelete after 30 days" in out and "cases deleted 1" in out
    assert main(["retention", "show", *args]) == 0
    assert "nimbus\tdelete after 30 days\tlast run " in capsys.readouterr().out
    assert main(["retention", "partitions", "--ensure", *args]) == 0
    assert "connectors_rawpayload_default" in capsys.readouterr().out
    assert Brand.objects.get(slug="nimbus").retention_days == 30


@pytestmark_cli
def test_a_reply_arriving_while_its_case_is_deleted_is_stored_all_the_same() -> None:
    """Ingest locks the cases a batch touches, as retention does: it waits for the deletion, then stores the reply
    (in a case of its own) instead of failing on a case that no longer exists."""
    import threading

    from django.db import connections

    from factories import ingest, make_post

    installation = make_installation(make_brand("Nimbus"))
    do_set_retention(installation.brand, 30, "delete", T0)
    case = _case(installation, "resolved", OLD)
    parent = case.posts.get()
    run = RetentionRun.objects.create(brand=installation.brand, action="delete", days=30, started_at=NOW,
                                      cutoff=NOW - timedelta(days=30))
    locked, release = threading.Event(), threading.Event()
    stored: list[int] = []

    def delete() -> None:
        from caredesk.retention.actions import do_retain_cases

        try:
            with transaction.atomic():
                do_retain_cases(run, [case.pk])
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    def reply() -> None:
        try:
            report = ingest(installation, make_post("still broken, any news?", author_id=parent.author.external_id,
                                                    handle=parent.author.handle,
                                                    in_reply_to=parent.external_id), now=NOW)
            stored.extend(report.post_ids)
        finally:
            connections.close_all()

    deleter = threading.Thread(target=delete)
    deleter.start()
    assert locked.wait(10)
    replier = threading.Thread(target=reply)
    replier.start()
    replier.join(1.0)
    assert replier.is_alive()  # waiting for the case's lock
    release.set()
    deleter.join(10)
    replier.join(10)
    assert not Case.objects.filter(pk=case.pk).exists()
    assert len(stored) == 1
    post = Post.objects.get(pk=stored[0])
    assert post.text == "still broken, any news?" and post.case_id != case.pk
