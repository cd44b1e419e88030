"""The provider's reply rules decide what may be queued, and the composer says so as soon as the case opens."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from django.db import transaction

from caredesk.cases.models import Case, Post
from caredesk.inbox.presenters import get_composer
from caredesk.outbox.actions import ReplyError, do_queue_reply
from caredesk.outbox.models import Reply
from factories import ingest, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db


def _keyword_match_case(platform: str, url: str = "") -> Case:
    installation = make_installation(platform=platform)
    post = dataclasses.replace(make_post("nimbus is the worst, down again"), summoned=False,
                               matched_keywords=("nimbus",), url=url)
    ingest(installation, post)
    stored = Post.objects.get()
    assert stored.summoned is False and stored.matched_keywords == ["nimbus"]
    return Case.objects.get()


def test_an_unsummoned_post_on_x_cannot_be_answered_through_the_api() -> None:
    case = _keyword_match_case("x")
    composer = get_composer(case)
    assert "did not address the brand" in composer.refusal
    with pytest.raises(ReplyError, match="did not address the brand"), transaction.atomic():
        do_queue_reply(case, case.posts.get(), "Can I help?", make_user(), datetime.now(UTC))
    assert not Reply.objects.exists()


def test_the_composer_offers_to_open_a_keyword_match_on_the_platform() -> None:
    composer = get_composer(_keyword_match_case("x", url="https://x.com/rita/status/1850000000000000001"))
    assert composer.refusal and composer.open_url == "https://x.com/rita/status/1850000000000000001"


def test_a_post_url_that_is_not_a_web_link_is_never_offered() -> None:
    composer = get_composer(_keyword_match_case("x", url="javascript:alert(1)"))
    assert composer.refusal and composer.open_url == ""


def test_an_unsummoned_post_on_mastodon_can_be_answered() -> None:
    case = _keyword_match_case("mastodon")
    composer = get_composer(case)
    assert composer.refusal == "" and composer.limit == 500
    with transaction.atomic():
        reply = do_queue_reply(case, case.posts.get(), "Can I help?", make_user(), datetime.now(UTC))
    assert reply.state == Reply.State.QUEUED


def test_the_composer_shows_the_platforms_own_limit_and_unit() -> None:
    installation = make_installation(platform="bluesky")
    ingest(installation, make_post("@nimbus my internet is down"))
    composer = get_composer(Case.objects.get())
    assert (composer.limit, composer.unit, composer.refusal) == (300, "graphemes", "")


def test_a_direct_message_is_kept_direct_summoned_or_not() -> None:
    installation = make_installation(platform="x")
    ingest(installation, dataclasses.replace(make_post("my account number is..."), is_direct=True, summoned=False))
    assert Post.objects.get().summoned is True  # a DM is addressed to the brand by definition


def test_the_thread_marks_a_post_nobody_addressed_to_the_brand() -> None:
    from django.test import Client

    case = _keyword_match_case("x")
    agent = make_user(brands=[case.brand])
    client = Client()
    client.force_login(agent)
    html = client.get(f"/cases/{case.pk}/").content.decode()
    assert 'class="chip chip--heard"' in html and "heard: nimbus" in html


def test_a_post_deleted_on_the_platform_shows_so_and_cannot_be_answered() -> None:
    from django.test import Client

    from caredesk.cases.actions import do_delete_posts

    installation = make_installation(platform="mastodon")
    ingest(installation, make_post("my card number is 4111 1111 1111 1111", external_id="gone"))
    case = Case.objects.get()
    with transaction.atomic():
        do_delete_posts(installation, ["gone"], datetime.now(UTC))
    post = case.posts.get()
    assert post.deleted_at is not None and post.text == ""
    client = Client()
    client.force_login(make_user(brands=[case.brand]))
    html = client.get(f"/cases/{case.pk}/").content.decode()
    assert "Deleted on the platform" in html and "4111" not in html
    assert f'data-post-id="{post.pk}"' not in html  # no "Reply to this"
    assert "deleted on the platform" in html  # the timeline says what happened
    with pytest.raises(ReplyError, match="deleted on the platform"), transaction.atomic():
        do_queue_reply(case, post, "Can I help?", make_user(), datetime.now(UTC))
