"""Every write of the inbox: the expected database state, an Activity row, and errors shown in the pane."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client
from inbox_support import HX, MakeCase
from procrastinate.contrib.django.models import ProcrastinateJob

from caredesk.accounts.models import Membership
from caredesk.cases.models import Activity, Case, Note
from caredesk.outbox.models import Reply

pytestmark = pytest.mark.django_db


def _activities(case: Case, kind: str) -> list[Activity]:
    return list(Activity.objects.filter(case=case, kind=kind).order_by("id"))


def _reply(client: Client, case: Case, text: str, key: str | None = None, **extra: str) -> tuple[int, str]:
    response = client.post(
        f"/cases/{case.pk}/reply", {"text": text, "idempotency_key": key or uuid.uuid4().hex, **extra}, headers=HX
    )
    return response.status_code, response.content.decode()


# ---------------------------------------------------------------------------------------------------------------
# Replies


def test_reply_ok_is_queued_with_its_send_job(agent_client: Client, case: Case, agent: User) -> None:
    status, html = _reply(agent_client, case, "Sorry about that! Can I help?")
    assert status == 200
    reply = Reply.objects.get(case=case)
    assert reply.state == Reply.State.QUEUED and reply.text == "Sorry about that! Can I help?"
    assert reply.author == agent and reply.in_reply_to == case.posts.get()
    jobs = ProcrastinateJob.objects.filter(task_name="outbox.send_reply")
    assert [job.args for job in jobs] == [{"reply_id": reply.pk}]
    assert _activities(case, "reply_queued")
    # The fresh reply box (empty, with a new key) plus the thread out of band, showing the queued reply.
    assert 'id="reply-form"' in html and 'hx-swap-oob="true"' in html
    assert f'id="reply-{reply.pk}"' in html and 'data-reply-state="queued"' in html
    assert reply.idempotency_key not in html


def test_reply_too_long_is_refused_and_not_queued(agent_client: Client, case: Case) -> None:
    too_long = "a" * 281
    key = uuid.uuid4().hex
    status, html = _reply(agent_client, case, too_long, key)
    assert status == 422
    assert "x: too long: 281 weighted characters, the limit is 280" in html
    assert Reply.objects.count() == 0 and ProcrastinateJob.objects.count() == 0
    assert too_long in html  # the agent's text is kept for editing
    assert key in html  # nothing was queued, so the same key stays valid
    # URLs count 23 on X, so a long link fits.
    ok = "Status page: https://status.nimbus.example/outages/94110/fiber-cut-update?utm=care " + "b" * 240
    assert _reply(agent_client, case, ok)[0] == 200


def test_empty_reply_is_refused(agent_client: Client, case: Case) -> None:
    status, html = _reply(agent_client, case, "   ")
    assert status == 422 and "the reply is empty" in html
    assert not Reply.objects.exists()


def test_double_submit_with_same_key_sends_once(agent_client: Client, case: Case) -> None:
    key = uuid.uuid4().hex
    assert _reply(agent_client, case, "Can I help?", key)[0] == 200
    assert _reply(agent_client, case, "Can I help?", key)[0] == 200
    assert Reply.objects.filter(case=case).count() == 1
    assert ProcrastinateJob.objects.count() == 1
    assert len(_activities(case, "reply_queued")) == 1


def test_reply_to_a_chosen_post_and_to_a_foreign_post(agent_client: Client, make_case: MakeCase) -> None:
    case = make_case("first post")
    other = make_case("someone else")
    post = case.posts.get()
    assert _reply(agent_client, case, "Hi!", in_reply_to=str(post.pk))[0] == 200
    assert Reply.objects.get().in_reply_to == post
    status, html = _reply(agent_client, case, "Hi!", in_reply_to=str(other.posts.get().pk))
    assert status == 422 and "not a customer post of this case" in html


def test_reply_without_htmx_redirects_back(agent_client: Client, case: Case) -> None:
    response = agent_client.post(f"/cases/{case.pk}/reply", {"text": "Can I help?",
                                                              "idempotency_key": uuid.uuid4().hex})
    assert response.status_code == 303 and response["Location"] == f"/cases/{case.pk}/"
    page = agent_client.post(f"/cases/{case.pk}/reply", {"text": "x" * 300, "idempotency_key": "k1"})
    assert page.status_code == 422 and b"<html" in page.content and b"the limit is 280" in page.content


def test_failed_reply_shows_error_and_retry(agent_client: Client, case: Case, agent: User) -> None:
    assert _reply(agent_client, case, "Can I help?")[0] == 200
    reply = Reply.objects.get()
    Reply.objects.filter(pk=reply.pk).update(state=Reply.State.FAILED, error="platform said <b>no</b>")
    html = agent_client.get(f"/cases/{case.pk}/live", headers=HX).content.decode()
    assert 'data-reply-state="failed"' in html and "platform said &lt;b&gt;no&lt;/b&gt;" in html
    assert f"/cases/{case.pk}/replies/{reply.pk}/retry" in html
    response = agent_client.post(f"/cases/{case.pk}/replies/{reply.pk}/retry", headers=HX)
    assert response.status_code == 200
    reply.refresh_from_db()
    assert reply.state == Reply.State.QUEUED
    # The first send job has not run in this test: it still waits, and one waiting job per reply is enough.
    assert ProcrastinateJob.objects.filter(status="todo").count() == 1
    assert any(a.data.get("retry") for a in _activities(case, "reply_queued"))
    # Retrying a reply that is not failed is refused with a message, not a 500.
    again = agent_client.post(f"/cases/{case.pk}/replies/{reply.pk}/retry", headers=HX)
    assert again.status_code == 422 and "only a failed reply can be retried" in again.content.decode()


# ---------------------------------------------------------------------------------------------------------------
# Case actions


def test_take_assigns_to_me(agent_client: Client, case: Case, agent: User) -> None:
    response = agent_client.post(f"/cases/{case.pk}/assign", {"assignee": "me"}, headers=HX)
    assert response.status_code == 200
    case.refresh_from_db()
    assert case.assignee == agent and case.status == "open"
    [activity] = _activities(case, "case_assigned")
    assert activity.actor == agent and activity.data["assignee"] == "ana"
    assert json.loads(response["HX-Trigger"]) == {"caredesk:case-changed": {"case": case.pk}}
    assert 'data-action="take"' not in response.content.decode()  # already mine


def test_assign_to_another_agent_and_unassign(agent_client: Client, case: Case, agent: User,
                                              other_agent: User) -> None:
    Membership.objects.filter(user=agent).update(role="supervisor")  # assigning to others is a supervisor's
    agent_client.post(f"/cases/{case.pk}/assign", {"assignee": str(other_agent.pk)}, headers=HX)
    case.refresh_from_db()
    assert case.assignee == other_agent
    agent_client.post(f"/cases/{case.pk}/assign", {"assignee": ""}, headers=HX)
    case.refresh_from_db()
    assert case.assignee is None
    assert [a.data["assignee"] for a in _activities(case, "case_assigned")] == ["ben", None]
    bad = agent_client.post(f"/cases/{case.pk}/assign", {"assignee": "424242"}, headers=HX)
    assert bad.status_code == 422 and "no such agent" in bad.content.decode()


def test_resolve_reopen_and_pending(agent_client: Client, case: Case, agent: User) -> None:
    response = agent_client.post(f"/cases/{case.pk}/status", {"status": "resolved"}, headers=HX)
    assert response.status_code == 200
    case.refresh_from_db()
    assert case.status == "resolved" and case.resolved_at is not None
    assert 'data-action="reopen"' in response.content.decode()

    agent_client.post(f"/cases/{case.pk}/status", {"status": "open"}, headers=HX)
    case.refresh_from_db()
    assert case.status == "open" and case.resolved_at is None

    agent_client.post(f"/cases/{case.pk}/status", {"status": "pending"}, headers=HX)
    case.refresh_from_db()
    assert case.status == "pending"
    statuses = [a.data["status"] for a in _activities(case, "case_status")]
    assert statuses == ["resolved", "open", "pending"]
    assert all(a.actor == agent for a in _activities(case, "case_status"))

    bad = agent_client.post(f"/cases/{case.pk}/status", {"status": "exploded"}, headers=HX)
    assert bad.status_code == 422 and "alert--error" in bad.content.decode()


def test_note_is_added_and_shown_as_internal(agent_client: Client, case: Case, agent: User) -> None:
    response = agent_client.post(f"/cases/{case.pk}/notes", {"text": "Called her, modem replaced"}, headers=HX)
    assert response.status_code == 200
    note = Note.objects.get(case=case)
    assert note.text == "Called her, modem replaced" and note.author == agent
    assert _activities(case, "note_added")[0].data["note_id"] == note.pk
    html = response.content.decode()
    assert 'id="note-form"' in html and f'id="note-{note.pk}"' in html and "Internal note" in html
    empty = agent_client.post(f"/cases/{case.pk}/notes", {"text": "  "}, headers=HX)
    assert empty.status_code == 422 and "a note needs some text" in empty.content.decode()


def test_label_correction(agent_client: Client, case: Case, agent: User) -> None:
    response = agent_client.post(f"/cases/{case.pk}/labels", {"topic": "billing", "priority": "4"}, headers=HX)
    assert response.status_code == 200
    case.refresh_from_db()
    assert case.topic == "billing" and case.priority == 4
    [activity] = _activities(case, "case_labels")
    assert activity.data == {"topic": "billing", "priority": 4} and activity.actor == agent
    assert "labels: topic → billing, priority → urgent" in response.content.decode()
    bad = agent_client.post(f"/cases/{case.pk}/labels", {"topic": "<script>"}, headers=HX)
    assert bad.status_code == 422
    case.refresh_from_db()
    assert case.topic == "billing"


def test_actions_on_missing_case_are_404(agent_client: Client) -> None:
    assert agent_client.post("/cases/987654/assign", {"assignee": "me"}, headers=HX).status_code == 404
    assert agent_client.post("/cases/987654/notes", {"text": "x"}, headers=HX).status_code == 404


def test_writes_need_csrf(agent: User, case: Case) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    assert client.post(f"/cases/{case.pk}/status", {"status": "resolved"}, headers=HX).status_code == 403
    case.refresh_from_db()
    assert case.status != "resolved"
    page = client.get(f"/cases/{case.pk}/")
    token = page.cookies["csrftoken"].value
    ok = client.post(f"/cases/{case.pk}/status", {"status": "resolved"}, headers={**HX, "X-CSRFToken": token})
    assert ok.status_code == 200


def test_writes_without_htmx_redirect(agent_client: Client, case: Case) -> None:
    response = agent_client.post(f"/cases/{case.pk}/assign", {"assignee": "me"})
    assert response.status_code == 303 and response["Location"] == f"/cases/{case.pk}/"
    bad = agent_client.post(f"/cases/{case.pk}/status", {"status": "exploded"})
    assert bad.status_code == 422 and b"<html" in bad.content and b"alert--error" in bad.content
