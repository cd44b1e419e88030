"""Edits and deletions as events (published after commit, enough for a stale client to catch up, as every event
kind in tests/cases/test_events.py), the stored batch format, and a stream's health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

from caredesk.cases import events
from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.actions import lock_installation
from caredesk.connectors.base import (
    FetchResult,
    NormalizedAuthor,
    NormalizedPost,
    PostDeleted,
    PostEdited,
    RejectedRecord,
)
from caredesk.connectors.batches import dump_batch, load_batch
from caredesk.connectors.health import connector_health
from caredesk.connectors.listen import lease
from caredesk.connectors.processing import apply_result
from caredesk.ingest.pipeline import apply_changes
from factories import T0, ingest, make_installation, make_post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published():
    seen: list[events.Published] = []
    unsubscribe = events.subscribe(seen.append)
    yield seen
    unsubscribe()


def _state(case: Case) -> dict[str, object]:
    fresh = model_to_dict(Case.objects.get(pk=case.pk), fields=["status", "topic", "priority", "sentiment"])
    fresh["assignee_id"] = Case.objects.get(pk=case.pk).assignee_id
    fresh["posts"] = case.posts.count()
    fresh["notes"] = case.notes.count()
    return fresh


def _check(case: Case, published: list[events.Published], change) -> None:
    stale = _state(case)
    mark = Activity.objects.order_by("-id").first().pk
    published.clear()
    with transaction.atomic():
        change()
        assert published == [], "nothing may be announced before commit"
    ids = [i for event in published for i in event.activity_ids]
    assert ids, "the change was announced after commit"
    assert set(ids) == set(Activity.objects.filter(id__gt=mark).values_list("id", flat=True))
    for activity in Activity.objects.filter(case=case, id__gt=mark).order_by("id"):
        stale = events.apply_activity(stale, activity.kind, activity.data)
    assert stale == _state(case)


def _edited(post: NormalizedPost, text: str) -> NormalizedPost:
    return NormalizedPost(post.external_id, post.author, text, post.created_at, raw={"text": text})


def test_post_edited(published):
    installation = make_installation()
    original = make_post("my internet is down since the storm", external_id="a")
    ingest(installation, original)
    case = Case.objects.get()
    _check(case, published, lambda: apply_changes(lock_installation(installation.pk), "x",
                                                  [PostEdited(_edited(original, "my internet is down"))], T0))
    post = Post.objects.get()
    assert post.text == "my internet is down" and post.edited_at == T0 and post.raw == {"text": "my internet is down"}
    assert Activity.objects.get(kind="post_edited").data == {"post_id": post.pk}
    assert "storm" not in Case.objects.get().subject
    assert not any("storm" in str(a.data) for a in Activity.objects.all())


def test_post_deleted(published):
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="a"))
    ingest(installation, make_post("hello? still down", external_id="b", in_reply_to="a"))
    case = Case.objects.get()
    _check(case, published, lambda: apply_changes(lock_installation(installation.pk), "x", [PostDeleted("b")], T0))
    deleted = Post.objects.get(external_id="b")
    assert (deleted.text, deleted.raw, deleted.triage, deleted.deleted_at) == ("", {}, {}, T0)
    assert deleted.case_id == case.pk  # kept in the thread
    assert Case.objects.get().subject != "(post deleted on the platform)"  # the subject came from "a"
    _check(case, published, lambda: apply_changes(lock_installation(installation.pk), "x", [PostDeleted("a")], T0))
    assert Case.objects.get().subject == "(post deleted on the platform)"


def test_changes_of_unknown_or_deleted_posts_are_ignored():
    installation = make_installation()
    post = make_post("my internet is down", external_id="a")
    ingest(installation, post)
    with transaction.atomic():
        locked = lock_installation(installation.pk)
        edited, deleted = apply_changes(locked, "x", [PostDeleted("zz"), PostEdited(_edited(make_post(
            external_id="yy"), "x")), PostDeleted("a"), PostEdited(_edited(post, "back again"))], T0)
    assert (edited, deleted) == ([], [Post.objects.get().pk])
    assert Post.objects.get().text == ""


def test_an_edit_of_a_post_never_stored_stores_it_and_a_deletion_still_wins():
    installation = make_installation()
    gone = make_post("cancel my order", external_id="gone")
    ingest(installation, gone)
    with transaction.atomic():
        apply_changes(lock_installation(installation.pk), "x", [PostDeleted("gone")], T0)
    missed = make_post("my parcel never came", external_id="m1")
    batch = FetchResult(posts=[], cursor={"since_id": "9"}, changes=[
        PostEdited(_edited(missed, "my parcel never came (2 weeks)")),
        PostEdited(_edited(missed, "my parcel never came (3 weeks!)")),
        PostEdited(_edited(make_post(external_id="brief"), "here and gone")), PostDeleted("brief"),
        PostEdited(_edited(gone, "cancel my order please")),
    ])
    with transaction.atomic():
        report = apply_result(lock_installation(installation.pk), "x", batch, T0)
    stored = Post.objects.get(external_id="m1")
    assert stored.text == "my parcel never came (3 weeks!)" and stored.case_id is not None
    assert Post.objects.get(external_id="brief").deleted_at == T0  # edited then deleted in one batch: deleted
    assert Post.objects.get(external_id="gone").text == ""  # deleted before: an edit does not bring it back
    assert report.received == 2
    installation.refresh_from_db()
    assert installation.posts_received == 2 and installation.cursor == {"since_id": "9"}


def test_a_stored_batch_reads_back_as_it_was():
    author = NormalizedAuthor("u1", "casey", "Casey", 12, True)
    created = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
    post = NormalizedPost("p1", author, "ünïcödé 👋🏽", created, "p0", "c0", True, "de", "https://x/p1",
                          {"nested": {"n": 1}, "list": [1, "a"]}, summoned=False, matched_keywords=("fibre",))
    batch = FetchResult(posts=[post], cursor={"after": 7, "since": "x"},
                        rejected=[RejectedRecord(3, "no id", {"raw": True})],
                        changes=[PostEdited(post), PostDeleted("p9")], credentials={"token": "rotated-secret"},
                        rate_limit_remaining=42, warnings=("recent search failed",))
    body = dump_batch(batch)
    assert b"rotated-secret" not in body  # encrypted at rest
    assert load_batch(body) == batch


def test_a_streams_health():
    installation = make_installation()
    assert connector_health(installation)["connected"] is None  # not a stream: nobody holds it
    assert lease.acquire(installation.pk, "host:1:a", 30)
    assert not lease.acquire(installation.pk, "host:2:b", 30)  # held
    health = connector_health(installation)
    assert health["connected"] is True and health["listener"] == "host:1:a" and health["heartbeat_at"]
    assert lease.renew([installation.pk], "host:2:b", 30) == set()
    lease.release(installation.pk, "host:1:a")
    assert connector_health(installation, datetime.now(UTC) + timedelta(seconds=1))["connected"] is False
    assert lease.acquire(installation.pk, "host:2:b", 30)  # released: taken at once
