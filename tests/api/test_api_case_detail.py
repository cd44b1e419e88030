from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from caredesk.cases.actions import do_add_note, do_assign_case, lock_case
from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.outbox.actions import do_queue_reply
from factories import T0, ingest, make_post

pytestmark = pytest.mark.django_db


def _thread(installation: ConnectorInstallation) -> Case:
    """A customer complains, the brand answers on the platform, the customer writes back."""
    first = make_post("my internet is down again, third time this week", external_id="c1", author_id="cust-1",
                      handle="dana", created_at=T0)
    ingest(installation, first)
    ours = make_post("Sorry Dana, we're on it. Can you DM us your account number?", external_id="b1",
                     author_id="brand-nimbus", handle="nimbus", in_reply_to="c1",
                     created_at=T0 + timedelta(minutes=5))
    again = make_post("still down and nobody called me back", external_id="c2", author_id="cust-1",
                      handle="dana", in_reply_to="b1", created_at=T0 + timedelta(minutes=20))
    ingest(installation, ours, again, now=T0 + timedelta(hours=2))
    case = Post.objects.get(external_id="c1").case
    assert case is not None
    return case


def test_detail_tells_the_whole_story(api: Client, agent: User, installation: ConnectorInstallation) -> None:
    case = _thread(installation)
    with transaction.atomic():
        locked = lock_case(case.pk)
        do_assign_case(locked, agent, agent, T0 + timedelta(hours=3))
        note = do_add_note(locked, agent, "called them, line fault confirmed", T0 + timedelta(hours=3))
        latest = Post.objects.get(external_id="c2")
        reply = do_queue_reply(locked, latest, "An engineer is booked for tomorrow 9-12.", agent,
                               T0 + timedelta(hours=3), idempotency_key="detail-1")

    response = api.get(f"/api/cases/{case.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == case.pk
    assert body["assignee"] == "ana"
    assert body["status"] == "open"

    posts = body["posts"]
    assert [p["external_id"] for p in posts] == ["c1", "b1", "c2"]
    assert [p["direction"] for p in posts] == ["inbound", "outbound", "inbound"]
    assert posts[0]["author"]["handle"] == "dana"
    assert posts[1]["author"]["handle"] == "nimbus"
    assert posts[2]["in_reply_to_external_id"] == "b1"
    assert posts[0]["created_at"] == "2026-11-23T12:00:00Z"
    for post in posts:
        stored = Post.objects.get(pk=post["id"])
        assert post["triage"] == stored.triage
        assert set(post["triage"]) >= {"topic", "sentiment", "urgency", "needs_reply", "priority"}

    assert body["customer"]["id"] == case.customer_id
    assert [a["handle"] for a in body["customer"]["authors"]] == ["dana"]
    assert body["customer"]["authors"][0]["platform"] == "x"

    assert body["replies"] == [
        {
            "id": reply.pk,
            "case_id": case.pk,
            "state": "queued",
            "text": "An engineer is booked for tomorrow 9-12.",
            "in_reply_to": latest.pk,
            "author": "ana",
            "is_direct": False,
            "idempotency_key": "detail-1",
            "attempts": 0,
            "error": "",
            "external_id": "",
            "post_id": None,
            "created_at": "2026-11-23T15:00:00Z",
            "sent_at": None,
        }
    ]
    assert body["notes"] == [
        {"id": note.pk, "author": "ana", "text": "called them, line fault confirmed",
         "created_at": "2026-11-23T15:00:00Z"}
    ]

    timeline = body["timeline"]
    stored_kinds = list(Activity.objects.filter(case=case).order_by("id").values_list("kind", flat=True))
    assert [event["kind"] for event in timeline] == stored_kinds
    expected = {"case_created", "post_received", "case_assigned", "note_added", "reply_queued"}
    assert expected <= set(stored_kinds)
    assigned = next(event for event in timeline if event["kind"] == "case_assigned")
    assert assigned["actor"] == "ana"
    assert assigned["data"]["assignee"] == "ana"
    assert next(event for event in timeline if event["kind"] == "case_created")["actor"] is None


def test_detail_query_count_is_fixed(
    api: Client, installation: ConnectorInstallation, django_assert_num_queries: Any
) -> None:
    case = _thread(installation)
    api.get(f"/api/cases/{case.pk}")  # records the token's use; later requests within the minute only read
    # token, case (+ brand, assignee, customer), authors, posts, replies, notes, activities
    with django_assert_num_queries(8):  # seven, and the user's memberships
        assert api.get(f"/api/cases/{case.pk}").status_code == 200


def test_unknown_case_is_404(api: Client) -> None:
    response = api.get("/api/cases/987654")
    assert response.status_code == 404
    assert response.json() == {"detail": "case 987654 does not exist"}


@pytest.mark.parametrize("bad_id", ["abc", "0", "-3", str(2**70)])
def test_malformed_case_id_is_a_client_error(api: Client, bad_id: str) -> None:
    response = api.get(f"/api/cases/{bad_id}")
    assert response.status_code in (404, 422)
    assert "detail" in response.json()
