from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from caredesk.cases.actions import do_change_status, do_resolve_case
from caredesk.cases.models import Activity, Case, Post
from factories import T0, ingest, make_installation, make_post

pytestmark = pytest.mark.django_db


def test_same_post_twice_is_one_row():
    installation = make_installation()
    post = make_post("my internet has been down since 6am", external_id="x1")
    first = ingest(installation, post)
    again = ingest(installation, post, post)
    assert first.received == 1
    assert again.received == 0 and again.duplicates == 2
    assert Post.objects.filter(external_id="x1").count() == 1
    assert Case.objects.count() == 1


def test_reply_in_thread_joins_the_case():
    installation = make_installation()
    ingest(installation, make_post("no cable, no internet, no phone since we got back", external_id="a"))
    report = ingest(installation, make_post("still nothing, any update?", external_id="b", in_reply_to="a"))
    assert report.cases_created == 0 and report.cases_updated == 1
    case = Case.objects.get()
    assert list(case.posts.order_by("created_at").values_list("external_id", flat=True)) == ["a", "b"]


def test_thread_within_one_batch():
    installation = make_installation()
    report = ingest(
        installation,
        make_post("my bill doubled this month", external_id="a"),
        make_post("hello?? anyone?", external_id="b", in_reply_to="a"),
    )
    assert report.cases_created == 1
    assert Post.objects.get(external_id="b").case_id == Post.objects.get(external_id="a").case_id


def test_new_post_from_customer_with_open_case_joins_it():
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="a", author_id="u7"))
    ingest(installation, make_post("also the phone line is dead", external_id="b", author_id="u7"))
    assert Case.objects.count() == 1


def test_different_customers_get_different_cases():
    installation = make_installation()
    ingest(installation, make_post("internet down", author_id="u1"), make_post("internet down", author_id="u2"))
    assert Case.objects.count() == 2


def test_follow_up_to_resolved_case_reopens_it(now):
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="a"))
    case = Case.objects.get()
    with transaction.atomic():
        do_resolve_case(case, None, T0 + timedelta(hours=2))
    ingest(installation, make_post("it's down again", external_id="b", in_reply_to="a"),
           now=T0 + timedelta(hours=3))
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN and case.resolved_at is None
    assert Case.objects.count() == 1
    assert Activity.objects.filter(case=case, kind="case_status", data__status="open").exists()


def test_follow_up_long_after_resolution_opens_a_new_case():
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="a"))
    case = Case.objects.get()
    with transaction.atomic():
        do_resolve_case(case, None, T0 + timedelta(hours=2))
    ingest(installation, make_post("down again", external_id="b", in_reply_to="a"), now=T0 + timedelta(days=30))
    assert Case.objects.count() == 2
    assert Post.objects.get(external_id="b").case_id != case.pk


def test_customer_answer_moves_pending_case_back_to_open():
    installation = make_installation()
    ingest(installation, make_post("why was I charged twice?", external_id="a"))
    case = Case.objects.get()
    with transaction.atomic():
        do_change_status(case, Case.Status.PENDING, None, T0 + timedelta(minutes=5))
    ingest(installation, make_post("here is my reply", external_id="b", in_reply_to="a"))
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN


def test_our_own_posts_are_never_new_work():
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="a"))
    report = ingest(
        installation,
        make_post("Sorry about that! Can I help?", external_id="ours", author_id="brand-nimbus",
                  handle="NimbusCare", in_reply_to="a"),
        make_post("We have a new fibre plan!", external_id="ours2", author_id="brand-nimbus", handle="NimbusCare"),
    )
    assert report.own_posts == 2 and report.cases_created == 0
    ours = Post.objects.get(external_id="ours")
    assert ours.direction == Post.Direction.OUTBOUND
    assert ours.case_id == Post.objects.get(external_id="a").case_id
    assert Post.objects.get(external_id="ours2").case_id is None
    assert Case.objects.count() == 1


def test_spam_is_kept_but_opens_no_case():
    installation = make_installation()
    report = ingest(installation, make_post("GIVEAWAY!!! Win free crypto, follow and retweet http://spam.example"))
    assert report.spam == 1 and report.cases_created == 0
    assert Post.objects.get().case_id is None


def test_case_labels_come_from_triage():
    installation = make_installation()
    ingest(installation, make_post("Total outage in 94110, no internet for hours!! Fix it or I'm cancelling",
                                   followers=50_000))
    case = Case.objects.get()
    assert case.needs_reply is True
    assert case.sentiment == "negative"
    assert case.priority >= Case.Priority.HIGH
    post = case.posts.get()
    assert post.triage["needs_reply"]["value"] is True
    assert post.triage["urgency"]["reasons"]


def test_author_profile_updates_in_place():
    installation = make_installation()
    ingest(installation, make_post("hello, question about my plan", author_id="u9", followers=10))
    ingest(installation, make_post("another question", author_id="u9", followers=999))
    post = Post.objects.order_by("-created_at").first()
    assert post is not None and post.author.followers == 999


def test_case_subject_never_carries_personal_data():
    installation = make_installation()
    ingest(installation, make_post("Charged twice on account 4402917735, call me at 415-555-0134"))
    subject = Case.objects.get().subject
    assert "4402917735" not in subject and "555-0134" not in subject
    assert subject.startswith("Charged twice on account [account number")
