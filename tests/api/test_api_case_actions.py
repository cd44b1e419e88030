from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from caredesk.accounts.models import Membership
from caredesk.cases.models import Activity, Case, Note, Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.outbox.models import Reply
from factories import T0, ingest, make_post, make_user

pytestmark = pytest.mark.django_db

MakeCase = Callable[..., Case]


def send_jobs() -> list[ProcrastinateJob]:
    return list(ProcrastinateJob.objects.filter(task_name="outbox.send_reply"))


def activities(case: Case, kind: str) -> list[Activity]:
    return list(Activity.objects.filter(case=case, kind=kind).order_by("id"))


# ---- replies -------------------------------------------------------------------------------------------


def test_reply_is_queued_with_its_send_job(api: Client, agent: User, make_case: MakeCase) -> None:
    case = make_case()
    latest = Post.objects.get(case=case)
    response = api.post(f"/api/cases/{case.pk}/replies", {"text": "  Sorry about that! Checking now.  "},
                        content_type="application/json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "queued"
    assert body["text"] == "Sorry about that! Checking now."
    assert body["in_reply_to"] == latest.pk  # default: the latest inbound post
    assert body["author"] == "ana"
    assert body["created_at"].endswith("Z")

    reply = Reply.objects.get(pk=body["id"])
    assert (reply.case_id, reply.author, reply.state) == (case.pk, agent, Reply.State.QUEUED)
    jobs = send_jobs()
    assert len(jobs) == 1
    assert jobs[0].args == {"reply_id": reply.pk}
    assert jobs[0].status == "todo"
    [queued] = activities(case, Activity.Kind.REPLY_QUEUED)
    assert queued.actor == agent
    assert queued.data["reply_id"] == reply.pk


def test_reply_answers_the_latest_inbound_post_or_the_one_named(
    api: Client, installation: ConnectorInstallation
) -> None:
    first = make_post("my internet is down", external_id="c1", author_id="cust-9", created_at=T0)
    second = make_post("hello?? still down", external_id="c2", author_id="cust-9", in_reply_to="c1",
                       created_at=T0 + timedelta(minutes=3))
    ingest(installation, first, second)
    case = Post.objects.get(external_id="c1").case
    assert case is not None and Post.objects.get(external_id="c2").case_id == case.pk
    c1, c2 = Post.objects.get(external_id="c1"), Post.objects.get(external_id="c2")

    default = api.post(f"/api/cases/{case.pk}/replies", {"text": "On it"}, content_type="application/json")
    assert default.json()["in_reply_to"] == c2.pk
    named = api.post(f"/api/cases/{case.pk}/replies", {"text": "On it", "in_reply_to": c1.pk},
                     content_type="application/json")
    assert named.status_code == 202
    assert named.json()["in_reply_to"] == c1.pk


def test_reply_to_a_post_of_another_case_or_no_post_is_422(api: Client, make_case: MakeCase) -> None:
    case, other = make_case(), make_case()
    foreign = Post.objects.get(case=other)
    response = api.post(f"/api/cases/{case.pk}/replies", {"text": "hi", "in_reply_to": foreign.pk},
                        content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"] == f"post {foreign.pk} is not a post of this case"
    missing = api.post(f"/api/cases/{case.pk}/replies", {"text": "hi", "in_reply_to": 99999999},
                       content_type="application/json")
    assert missing.status_code == 422
    assert "99999999" in missing.json()["detail"]
    assert not Reply.objects.exists() and not send_jobs()


def test_same_idempotency_key_gives_the_same_reply(api: Client, make_case: MakeCase) -> None:
    case = make_case()
    payload = {"text": "We're looking into it.", "idempotency_key": "click-1"}
    first = api.post(f"/api/cases/{case.pk}/replies", payload, content_type="application/json")
    again = api.post(f"/api/cases/{case.pk}/replies", payload, content_type="application/json")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json() == again.json()
    assert Reply.objects.count() == 1
    assert len(send_jobs()) == 1
    assert len(activities(case, Activity.Kind.REPLY_QUEUED)) == 1


def test_idempotency_key_header(api: Client, make_case: MakeCase) -> None:
    case = make_case()
    url = f"/api/cases/{case.pk}/replies"
    key = {"Idempotency-Key": "hdr-1"}
    first = api.post(url, {"text": "one"}, content_type="application/json", headers=key)
    again = api.post(url, {"text": "one"}, content_type="application/json", headers=key)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["idempotency_key"] == "hdr-1"
    assert len(send_jobs()) == 1
    clash = api.post(url, {"text": "one", "idempotency_key": "body-1"}, content_type="application/json",
                     headers={"Idempotency-Key": "hdr-2"})
    assert clash.status_code == 422
    assert "differ" in clash.json()["detail"]


def test_idempotency_key_of_another_case_is_409(api: Client, make_case: MakeCase) -> None:
    case, other = make_case(), make_case()
    payload = {"text": "hi", "idempotency_key": "k-1"}
    first = api.post(f"/api/cases/{case.pk}/replies", payload, content_type="application/json")
    assert first.status_code == 202
    response = api.post(f"/api/cases/{other.pk}/replies", payload, content_type="application/json")
    # A well-formed request that collides with a stored reply: a conflict, not a malformed request.
    assert response.status_code == 409
    assert "another case" in response.json()["detail"]
    assert Reply.objects.count() == 1


def test_reply_over_the_x_limit_is_422_and_nothing_is_queued(api: Client, make_case: MakeCase) -> None:
    case = make_case()
    url = f"/api/cases/{case.pk}/replies"
    response = api.post(url, {"text": "a" * 281}, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"] == "x: too long: 281 weighted characters, the limit is 280"
    # X weighs CJK and emoji double: 141 of them are 282 units although only 141 characters.
    wide = api.post(url, {"text": "好" * 141}, content_type="application/json")
    assert wide.status_code == 422
    assert "282 weighted characters" in wide.json()["detail"]
    assert not Reply.objects.exists()
    assert not send_jobs()
    assert not activities(case, Activity.Kind.REPLY_QUEUED)

    at_limit = api.post(url, {"text": "a" * 280}, content_type="application/json")
    assert at_limit.status_code == 202


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"text": "   "}, "text: Value error, must not be empty or only whitespace"),
        ({"text": ""}, "text: Value error, must not be empty or only whitespace"),
        ({"text": "\u2003\n"}, "text: Value error, must not be empty or only whitespace"),
        ({}, "text"),
        ({"text": 12}, "text"),
        ({"text": "hi", "idempotency_key": "k" * 81}, "idempotency_key"),
    ],
)
def test_bad_reply_input_is_422_with_a_message(
    api: Client, make_case: MakeCase, payload: dict[str, object], message: str
) -> None:
    case = make_case()
    response = api.post(f"/api/cases/{case.pk}/replies", payload, content_type="application/json")
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert not Reply.objects.exists()


def test_malformed_json_is_400(api: Client, make_case: MakeCase) -> None:
    case = make_case()
    response = api.post(f"/api/cases/{case.pk}/replies", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


@pytest.mark.parametrize("body", ["[null, null]", "3", '"open"', "null"])
def test_a_body_that_is_not_an_object_is_422(api: Client, make_case: MakeCase, body: str) -> None:
    # Every field of a PATCH is optional: an array must not pass as an object that changes nothing.
    case = make_case(status="open")
    response = api.patch(f"/api/cases/{case.pk}", body, content_type="application/json")
    assert response.status_code == 422, response.content
    assert response.json()["detail"] == "body: Value error, the body must be a JSON object"
    note = api.post(f"/api/cases/{case.pk}/notes", body, content_type="application/json")
    assert note.status_code == 422
    assert not Note.objects.exists()


def test_get_reply(api: Client, make_case: MakeCase) -> None:
    case = make_case()
    posted = api.post(f"/api/cases/{case.pk}/replies", {"text": "hi"}, content_type="application/json")
    created = posted.json()
    response = api.get(f"/api/replies/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    missing = api.get("/api/replies/424242")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "reply 424242 does not exist"}


# ---- assign, resolve, reopen, notes, labels ------------------------------------------------------------


def test_assign_to_me_someone_and_nobody(api: Client, agent: User, make_case: MakeCase) -> None:
    # Giving a case to someone else is a supervisor's right (see test_access for an agent's refusal).
    Membership.objects.filter(user=agent).update(role="supervisor")
    case = make_case(status="new")
    bo = make_user("bo")
    url = f"/api/cases/{case.pk}/assign"

    mine = api.post(url, {"assignee": "me"}, content_type="application/json")
    assert mine.status_code == 200, mine.content
    assert (mine.json()["assignee"], mine.json()["status"]) == ("ana", "open")
    case.refresh_from_db()
    assert (case.assignee, case.status) == (agent, Case.Status.OPEN)

    assert api.post(url, {"assignee": "bo"}, content_type="application/json").json()["assignee"] == "bo"
    assert Case.objects.get(pk=case.pk).assignee == bo
    assert api.post(url, {"assignee": None}, content_type="application/json").json()["assignee"] is None
    assert Case.objects.get(pk=case.pk).assignee is None

    events = activities(case, Activity.Kind.CASE_ASSIGNED)
    assert [e.data["assignee"] for e in events] == ["ana", "bo", None]
    assert all(e.actor == agent for e in events)


def test_assign_to_unknown_or_inactive_user_is_422(api: Client, make_case: MakeCase) -> None:
    case = make_case()
    make_user("gone").__class__.objects.filter(username="gone").update(is_active=False)
    url = f"/api/cases/{case.pk}/assign"
    for name in ("nobody", "gone"):
        response = api.post(url, {"assignee": name}, content_type="application/json")
        assert response.status_code == 422
        assert name in response.json()["detail"]
    assert api.post(url, {}, content_type="application/json").status_code == 422  # assignee is required
    assert Case.objects.get(pk=case.pk).assignee is None
    assert not activities(case, Activity.Kind.CASE_ASSIGNED)


def test_resolve_and_reopen(api: Client, agent: User, make_case: MakeCase) -> None:
    case = make_case(status="open")
    resolved = api.post(f"/api/cases/{case.pk}/resolve")
    assert resolved.status_code == 200, resolved.content
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"].endswith("Z")
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED and case.resolved_at is not None

    reopened = api.post(f"/api/cases/{case.pk}/reopen")
    assert reopened.status_code == 200
    assert (reopened.json()["status"], reopened.json()["resolved_at"]) == ("open", None)
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN and case.resolved_at is None

    events = activities(case, Activity.Kind.CASE_STATUS)
    assert [(e.data["previous"], e.data["status"], e.actor) for e in events] == [
        ("open", "resolved", agent), ("resolved", "open", agent),
    ]


def test_reopen_an_open_case_is_409(api: Client, make_case: MakeCase) -> None:
    case = make_case(status="open")
    response = api.post(f"/api/cases/{case.pk}/reopen")
    assert response.status_code == 409
    assert response.json() == {"detail": "the case is already open"}


def test_add_note(api: Client, agent: User, make_case: MakeCase) -> None:
    case = make_case()
    response = api.post(f"/api/cases/{case.pk}/notes", {"text": "VIP, handle with care"},
                        content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["author"], body["text"]) == ("ana", "VIP, handle with care")
    note = Note.objects.get(pk=body["id"])
    assert (note.case_id, note.author) == (case.pk, agent)
    [event] = activities(case, Activity.Kind.NOTE_ADDED)
    assert event.data == {"note_id": note.pk}

    empty = api.post(f"/api/cases/{case.pk}/notes", {"text": "  "}, content_type="application/json")
    assert empty.status_code == 422
    assert empty.json()["detail"] == "text: Value error, must not be empty or only whitespace"
    assert Note.objects.count() == 1


def test_patch_corrects_labels_and_status(api: Client, agent: User, make_case: MakeCase) -> None:
    case = make_case(topic="other", priority=2, status="open")
    response = api.patch(f"/api/cases/{case.pk}", {"topic": "billing", "priority": 4},
                         content_type="application/json")
    assert response.status_code == 200, response.content
    assert (response.json()["topic"], response.json()["priority"]) == ("billing", 4)
    case.refresh_from_db()
    assert (case.topic, case.priority, case.status) == ("billing", 4, Case.Status.OPEN)
    [labels] = activities(case, Activity.Kind.CASE_LABELS)
    assert labels.data == {"topic": "billing", "priority": 4}
    assert labels.actor == agent

    pending = api.patch(f"/api/cases/{case.pk}", {"status": "pending"}, content_type="application/json")
    assert pending.json()["status"] == "pending"
    assert Case.objects.get(pk=case.pk).status == Case.Status.PENDING
    [status] = activities(case, Activity.Kind.CASE_STATUS)
    assert status.data == {"status": "pending", "previous": "open", "reason": "changed by an agent"}

    unchanged = api.patch(f"/api/cases/{case.pk}", {}, content_type="application/json")
    assert unchanged.status_code == 200
    assert len(activities(case, Activity.Kind.CASE_LABELS)) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"priority": 9}, "priority"), ({"status": "closed"}, "status"), ({"topic": "x" * 41}, "topic"),
     ({"sentiment": "angry"}, "sentiment")],
)
def test_patch_with_bad_values_is_422(
    api: Client, make_case: MakeCase, payload: dict[str, object], field: str
) -> None:
    case = make_case(priority=2)
    response = api.patch(f"/api/cases/{case.pk}", payload, content_type="application/json")
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert not activities(case, Activity.Kind.CASE_LABELS)


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "replies", {"text": "hi"}),
        ("post", "assign", {"assignee": "me"}),
        ("post", "resolve", None),
        ("post", "reopen", None),
        ("post", "notes", {"text": "hi"}),
        ("patch", "", {"priority": 3}),
    ],
)
def test_writes_to_an_unknown_case_are_404(
    api: Client, method: str, path: str, payload: dict[str, object] | None
) -> None:
    url = f"/api/cases/555555/{path}".rstrip("/")
    response = getattr(api, method)(url, payload, content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"detail": "case 555555 does not exist"}


def test_nul_characters_are_422_not_a_database_error(api: Client, make_case: MakeCase) -> None:
    case = make_case()
    reply = api.post(f"/api/cases/{case.pk}/replies", {"text": "hi\x00there"}, content_type="application/json")
    assert reply.status_code == 422
    assert "NUL" in reply.json()["detail"]
    note = api.post(f"/api/cases/{case.pk}/notes", {"text": "\x00"}, content_type="application/json")
    assert note.status_code == 422
    assert api.get("/api/cases?q=%00").status_code == 422
    half = api.post(f"/api/cases/{case.pk}/replies", '{"text": "hi \\ud83d"}', content_type="application/json")
    assert half.status_code == 422
    assert "surrogate" in half.json()["detail"]
    assert api.get("/api/cases?q=%ED%A0%BD").status_code == 200  # Django decodes bad UTF-8 with U+FFFD
    assert not Reply.objects.exists() and not Note.objects.exists()
