"""Agents correcting triage labels: stored once per label, shown on the post and its case, announced after commit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from caredesk.cases import events
from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.triage.actions import LabelCorrectionError, do_correct_label, lock_post
from caredesk.triage.models import LabelCorrection
from factories import T0, ingest, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def installation(db: None) -> ConnectorInstallation:
    return make_installation()


@pytest.fixture
def post(installation: ConnectorInstallation) -> Post:
    report = ingest(installation, make_post("my internet is down", external_id="a", author_id="cust-1"))
    return Post.objects.get(pk=report.post_ids[0])


def correct(post_id: int, task: str, value: str, agent: User | None, minutes: int = 0) -> LabelCorrection:
    """As a request does it: lock, act, commit."""
    with transaction.atomic():
        locked = lock_post(post_id)
        assert locked is not None
        return do_correct_label(locked, task, value, agent, T0 + timedelta(minutes=minutes))


def test_correction_is_stored_and_shown_on_the_post(post: Post, agent: User) -> None:
    assert post.triage["sentiment"]["value"] == "negative"
    correction = correct(post.pk, "sentiment", " Positive ", agent)

    stored = LabelCorrection.objects.get()
    assert stored == correction
    assert (stored.task, stored.value, stored.previous_value) == ("sentiment", "positive", "negative")
    assert (stored.post_id, stored.brand_id, stored.agent) == (post.pk, post.installation.brand_id, agent)
    assert stored.created_at == T0
    triage = Post.objects.get(pk=post.pk).triage
    assert triage["sentiment"] == {"value": "positive", "score": 1.0, "reasons": ["corrected by ana"],
                                   "corrected_by": "ana"}
    assert triage["topic"]["value"] == "outage"  # the other labels are left as triage said


def test_boolean_labels_are_stored_as_strings_and_shown_as_booleans(post: Post, agent: User) -> None:
    assert post.triage["complaint"]["value"] is True
    correct(post.pk, "complaint", "false", agent)
    correct(post.pk, "spam", "TRUE", agent)
    assert dict(LabelCorrection.objects.values_list("task", "value")) == {"complaint": "false", "spam": "true"}
    assert dict(LabelCorrection.objects.values_list("task", "previous_value")) == {"complaint": "true",
                                                                                   "spam": "false"}
    triage = Post.objects.get(pk=post.pk).triage
    assert triage["complaint"]["value"] is False
    assert triage["spam"]["value"] is True


def test_a_later_correction_replaces_the_earlier_one(post: Post, agent: User) -> None:
    other = make_user("ben")
    correct(post.pk, "topic", "billing", agent)
    correct(post.pk, "topic", "technical", other, minutes=5)
    [stored] = LabelCorrection.objects.all()
    assert (stored.value, stored.agent, stored.created_at) == ("technical", other, T0 + timedelta(minutes=5))
    assert stored.previous_value == "outage"  # still what triage said, not the first correction
    label = Post.objects.get(pk=post.pk).triage["topic"]
    assert (label["value"], label["reasons"]) == ("technical", ["corrected by ben"])
    kinds = list(Activity.objects.filter(kind=Activity.Kind.LABEL_CORRECTED).order_by("id").values_list("data",
                                                                                                        flat=True))
    assert [(d["previous"], d["value"]) for d in kinds] == [("outage", "billing"), ("billing", "technical")]


def test_the_same_correction_twice_changes_nothing(post: Post, agent: User) -> None:
    correct(post.pk, "sentiment", "neutral", agent)
    before = Activity.objects.count()
    correct(post.pk, "sentiment", "neutral", agent, minutes=1)
    assert Activity.objects.count() == before
    assert LabelCorrection.objects.get().created_at == T0


def test_confirming_a_label_is_stored_as_training_data(post: Post, agent: User) -> None:
    correct(post.pk, "topic", "outage", agent)
    stored = LabelCorrection.objects.get()
    assert (stored.value, stored.previous_value) == ("outage", "outage")
    assert Post.objects.get(pk=post.pk).triage["topic"]["score"] == 1.0


@pytest.mark.parametrize(
    ("task", "value", "message"),
    [
        ("urgency", "0.9", "unknown label 'urgency'"),
        ("complaint", "maybe", "complaint must be 'true' or 'false', not 'maybe'"),
        ("needs_reply", "", "needs_reply must be 'true' or 'false'"),
        ("sentiment", "angry", "sentiment must be one of negative, neutral, positive, not 'angry'"),
        ("topic", "weather", "unknown topic 'weather'; use one of outage, billing"),
        ("topic", "<b>x</b>", "unknown topic '<b>x</b>'"),
    ],
)
def test_invalid_corrections_are_refused(post: Post, agent: User, task: str, value: str, message: str) -> None:
    with pytest.raises(LabelCorrectionError) as info:
        correct(post.pk, task, value, agent)
    assert message in str(info.value)
    assert not LabelCorrection.objects.exists()
    assert Post.objects.get(pk=post.pk).triage == post.triage
    assert not Activity.objects.filter(kind=Activity.Kind.LABEL_CORRECTED).exists()


def test_posts_the_desk_sent_have_no_labels_to_correct(installation: ConnectorInstallation, agent: User) -> None:
    own = make_post("We're on it!", external_id="own", author_id="brand-nimbus", handle="NimbusCare")
    ingest(installation, own)
    post = Post.objects.get(external_id="own")
    assert post.direction == Post.Direction.OUTBOUND
    with pytest.raises(LabelCorrectionError, match="only customer posts"):
        correct(post.pk, "sentiment", "positive", agent)


def test_lock_post_of_a_missing_post_is_none(db: None) -> None:
    with transaction.atomic():
        assert lock_post(987654321) is None


# ---------------------------------------------------------------------------------------------------------------
# The case follows


def test_case_labels_follow_the_correction_of_its_only_post(post: Post, agent: User) -> None:
    case = Case.objects.get(pk=post.case_id)
    assert (case.topic, case.sentiment, case.needs_reply) == ("outage", "negative", True)
    correct(post.pk, "topic", "billing", agent)
    correct(post.pk, "sentiment", "neutral", agent)
    correct(post.pk, "needs_reply", "false", agent)
    correct(post.pk, "complaint", "false", agent)  # no case label: the case stays as it is
    case.refresh_from_db()
    assert (case.topic, case.sentiment, case.needs_reply) == ("billing", "neutral", False)
    assert case.updated_at == T0
    labels = list(
        Activity.objects.filter(case=case, kind=Activity.Kind.CASE_LABELS).order_by("id").values_list("data", "actor")
    )
    assert labels == [({"topic": "billing"}, agent.pk), ({"sentiment": "neutral"}, agent.pk),
                      ({"needs_reply": False}, agent.pk)]


def test_case_keeps_a_label_another_post_decides(installation: ConnectorInstallation, agent: User) -> None:
    ingest(installation, make_post("my internet is down", external_id="first", author_id="cust-2"))
    ingest(installation, make_post("still down, my bill is wrong too", external_id="second", author_id="cust-2",
                                   in_reply_to="first"))
    first, second = Post.objects.get(external_id="first"), Post.objects.get(external_id="second")
    case = Case.objects.get(pk=first.case_id)
    assert second.case_id == case.pk
    sentiment_before = case.sentiment
    assert second.triage["sentiment"]["value"] == sentiment_before

    # The latest post decides the case's sentiment; correcting the first one leaves the case alone.
    correct(first.pk, "sentiment", "positive" if sentiment_before != "positive" else "neutral", agent)
    case.refresh_from_db()
    assert case.sentiment == sentiment_before
    assert not Activity.objects.filter(case=case, kind=Activity.Kind.CASE_LABELS).exists()

    # ... and correcting the latest one moves it.
    correct(second.pk, "sentiment", "positive", agent)
    case.refresh_from_db()
    assert case.sentiment == "positive"


def test_needs_reply_of_a_case_stays_while_another_post_needs_one(
    installation: ConnectorInstallation, agent: User
) -> None:
    ingest(installation, make_post("my internet is down", external_id="n1", author_id="cust-3"))
    ingest(installation, make_post("is anyone there?", external_id="n2", author_id="cust-3", in_reply_to="n1"))
    n1, n2 = Post.objects.get(external_id="n1"), Post.objects.get(external_id="n2")
    assert n1.triage["needs_reply"]["value"] and n2.triage["needs_reply"]["value"]
    correct(n1.pk, "needs_reply", "false", agent)
    assert Case.objects.get(pk=n1.case_id).needs_reply is True
    correct(n2.pk, "needs_reply", "false", agent)
    assert Case.objects.get(pk=n1.case_id).needs_reply is False


def test_spam_post_without_a_case_can_be_corrected(installation: ConnectorInstallation, agent: User) -> None:
    ingest(installation, make_post("WIN FREE iPhone!!! click here http://spam.example", external_id="s",
                                   author_id="spammer"))
    post = Post.objects.get(external_id="s")
    assert post.case_id is None and post.triage["spam"]["value"] is True
    correct(post.pk, "spam", "false", agent)
    assert LabelCorrection.objects.get().value == "false"
    activity = Activity.objects.get(kind=Activity.Kind.LABEL_CORRECTED)
    assert activity.case_id is None and activity.brand_id == installation.brand_id


# ---------------------------------------------------------------------------------------------------------------
# Events


@pytest.fixture
def published():
    seen: list[events.Published] = []
    unsubscribe = events.subscribe(seen.append)
    yield seen
    unsubscribe()


@pytest.mark.django_db(transaction=True)
def test_activity_is_recorded_and_announced_after_commit(published: list[events.Published]) -> None:
    agent = make_user("ana")
    installation = make_installation()
    report = ingest(installation, make_post("my internet is down", external_id="ev", author_id="cust-ev"))
    post_id = report.post_ids[0]
    published.clear()
    with transaction.atomic():
        post = lock_post(post_id)
        assert post is not None
        do_correct_label(post, "sentiment", "positive", agent, T0)
        assert published == [], "nothing may be announced before commit"
    ids = [i for event in published for i in event.activity_ids]
    activities = list(Activity.objects.filter(id__in=ids).order_by("id"))
    assert [a.kind for a in activities] == [Activity.Kind.LABEL_CORRECTED, Activity.Kind.CASE_LABELS]
    corrected = activities[0]
    assert corrected.actor == agent and corrected.case_id == Post.objects.get(pk=post_id).case_id
    assert corrected.data == {"post_id": post_id, "task": "sentiment", "value": "positive", "previous": "negative"}


@pytest.mark.django_db(transaction=True)
def test_rollback_stores_and_announces_nothing(published: list[events.Published]) -> None:
    agent = make_user("ana")
    installation = make_installation()
    report = ingest(installation, make_post("my internet is down", external_id="rb", author_id="cust-rb"))
    post_id = report.post_ids[0]
    mark = Activity.objects.order_by("-id").values_list("id", flat=True).first()
    published.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        post = lock_post(post_id)
        assert post is not None
        do_correct_label(post, "topic", "billing", agent, T0)
        raise RuntimeError("boom")
    assert published == []
    assert not LabelCorrection.objects.exists()
    assert not Activity.objects.filter(id__gt=mark or 0).exists()
    post = Post.objects.get(pk=post_id)
    assert post.triage["topic"]["value"] == "outage"
    assert Case.objects.get(pk=post.case_id).topic == "outage"
