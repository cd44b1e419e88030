"""Every event kind: published only after commit, and enough for a stale client to catch up."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

from caredesk.cases import events
from caredesk.cases.actions import (
    do_add_note,
    do_assign_case,
    do_change_status,
    do_reopen_case,
    do_resolve_case,
    do_set_case_labels,
)
from caredesk.cases.models import Activity, Case
from caredesk.outbox.actions import do_mark_reply_failed, do_queue_reply
from caredesk.outbox.tasks import send_reply_now
from factories import T0, ingest, make_installation, make_post, make_user

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
    fresh["replies"] = {r.pk: r.state for r in case.replies.all()}
    return fresh


def _catch_up(stale: dict[str, object], after_id: int, case: Case) -> dict[str, object]:
    for activity in Activity.objects.filter(case=case, id__gt=after_id).order_by("id"):
        stale = events.apply_activity(stale, activity.kind, activity.data)
    return stale


def _last_id() -> int:
    last = Activity.objects.order_by("-id").first()
    return last.pk if last else 0


@pytest.fixture
def case():
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="a"))
    return Case.objects.get()


def _check(case: Case, published: list[events.Published], change) -> None:
    stale = _state(case)
    mark = _last_id()
    published.clear()
    with transaction.atomic():
        change()
        assert published == [], "nothing may be announced before commit"
    ids = [i for event in published for i in event.activity_ids]
    assert ids, "the change was announced after commit"
    assert set(ids) == set(Activity.objects.filter(id__gt=mark).values_list("id", flat=True))
    assert _catch_up(stale, mark, case) == _state(case)


def test_post_received_and_case_created(published):
    installation = make_installation()
    with transaction.atomic():
        ingest(installation, make_post("my bill is wrong", external_id="a"))
        assert published == []
    kinds = set(Activity.objects.filter(id__in=published[0].activity_ids).values_list("kind", flat=True))
    assert kinds == {"case_created", "post_received"}


def test_post_received_on_existing_case(case, published):
    _check(case, published, lambda: ingest(case.posts.get().installation,
                                           make_post("any news?", external_id="b", in_reply_to="a")))


def test_case_assigned(case, published):
    agent = make_user()
    _check(case, published, lambda: do_assign_case(case, agent, agent, T0))


def test_case_status(case, published):
    _check(case, published, lambda: do_resolve_case(case, None, T0))
    _check(case, published, lambda: do_reopen_case(case, None, T0 + timedelta(minutes=1)))
    _check(case, published, lambda: do_change_status(case, "pending", None, T0 + timedelta(minutes=2)))


def test_note_added(case, published):
    agent = make_user()
    _check(case, published, lambda: do_add_note(case, agent, "called the customer", T0))


def test_case_labels(case, published):
    _check(case, published, lambda: do_set_case_labels(case, None, T0, topic="billing", priority=4))


def test_label_corrected(case, published):
    from caredesk.triage.actions import do_correct_label, lock_post

    agent = make_user()
    post_id = case.posts.get().pk
    assert Case.objects.get(pk=case.pk).needs_reply is True

    def correct(task, value, minutes):
        return lambda: do_correct_label(lock_post(post_id), task, value, agent, T0 + timedelta(minutes=minutes))

    _check(case, published, correct("sentiment", "positive", 0))
    _check(case, published, correct("topic", "billing", 1))
    _check(case, published, correct("complaint", "false", 2))  # a post label only: the case state stays
    # needs_reply is not part of _state (ingest's events do not carry it); the correction's events do.
    mark = _last_id()
    stale = {**_state(case), "needs_reply": True}
    with transaction.atomic():
        correct("needs_reply", "false", 3)()
    assert _catch_up(stale, mark, case) == {**_state(case), "needs_reply": False}
    assert Case.objects.get(pk=case.pk).needs_reply is False
    kinds = list(Activity.objects.filter(case=case, kind="label_corrected").values_list("data__task", flat=True))
    assert sorted(kinds) == ["complaint", "needs_reply", "sentiment", "topic"]


def test_reply_queued_sent_and_failed(case, published):
    agent = make_user()
    post = case.posts.get()
    holder = {}

    def queue():
        holder["reply"] = do_queue_reply(case, post, "Can I help?", agent, T0)

    _check(case, published, queue)
    _check(case, published, lambda: send_reply_now(holder["reply"].pk))
    assert Case.objects.get(pk=case.pk).status == "pending"

    def fail():
        reply = do_queue_reply(case, post, "Second answer", agent, T0)
        do_mark_reply_failed(reply, "refused", T0)

    _check(case, published, fail)


def test_rollback_announces_nothing(case, published):
    published.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        do_resolve_case(case, None, T0)
        raise RuntimeError("boom")
    assert published == []
    assert Case.objects.get(pk=case.pk).status != "resolved"


def _status_trail(case: Case) -> list[tuple[str, str, str]]:
    return [
        (a.data.get("previous", ""), a.data["status"], a.data.get("reason", ""))
        for a in Activity.objects.filter(case=case, kind="case_status").order_by("id")
    ]


def test_every_status_change_is_on_the_timeline(case, published):
    """new → open (assigned) → pending (replied) → open (customer answered) → resolved → open (wrote again):
    each step is a case_status activity with its previous status and reason, and a stale client catches up."""
    agent = make_user()
    installation = case.posts.get().installation
    _check(case, published, lambda: do_assign_case(case, agent, agent, T0))
    reply = do_queue_reply(case, case.posts.get(), "Can I help?", agent, T0)
    _check(case, published, lambda: send_reply_now(reply.pk))
    _check(case, published, lambda: ingest(installation, make_post("yes please", external_id="b", in_reply_to="a")))
    _check(case, published, lambda: do_resolve_case(Case.objects.get(pk=case.pk), agent, T0 + timedelta(hours=2)))
    _check(case, published, lambda: ingest(installation, make_post("it broke again", external_id="c",
                                                                      in_reply_to="b"), now=T0 + timedelta(hours=3)))
    assert _status_trail(case) == [
        ("new", "open", "assigned"),
        ("open", "pending", "replied; waiting for the customer"),
        ("pending", "open", "the customer answered"),
        ("open", "resolved", "changed by an agent"),
        ("resolved", "open", "customer wrote again"),
    ]
    # The case row agrees with the last activity.
    assert Case.objects.get(pk=case.pk).status == "open"


def test_a_transition_the_lifecycle_forbids_is_refused(case):
    from caredesk.cases.actions import CaseActionError

    do_change_status(case, "pending", None, T0)
    with pytest.raises(CaseActionError, match="cannot become new"):
        do_change_status(case, "new", None, T0)
    with pytest.raises(CaseActionError, match="unknown status"):
        do_change_status(case, "closed", None, T0)
    assert [s for _, s, _ in _status_trail(case)] == ["pending"]
