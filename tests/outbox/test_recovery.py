"""No reply is ever stuck: interrupted sends are settled by asking the platform, queued replies whose job vanished
are queued again, stalled jobs are retried, and a reply whose delivery nobody can tell waits for an agent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.forms.models import model_to_dict
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from caredesk.cases import events
from caredesk.cases.models import Activity, Case
from caredesk.connectors.builtin.replay.provider import read_publish_log
from caredesk.outbox.actions import ReplyError, do_queue_reply
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import send_reply_now, sweep_replies_now
from factories import ingest, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db

LATER = timedelta(hours=1)


def _case(tmp_path: Path | None, **config: object) -> Case:
    if tmp_path is not None:
        config["publish_log"] = str(tmp_path / "platform.jsonl")
    installation = make_installation(**config)
    ingest(installation, make_post("@NimbusCare my internet is down", external_id="a"))
    return Case.objects.get()


def _queue(case: Case) -> Reply:
    agent = make_user()
    with transaction.atomic():
        return do_queue_reply(case, case.posts.get(), "Can I help?", agent, datetime.now(UTC))


def _interrupt(reply: Reply, *, published: bool) -> None:
    """What a worker killed mid-send leaves: the reply claimed (sending), and maybe the platform's post."""
    if published:
        from caredesk.connectors.runtime import get_provider
        from caredesk.outbox.tasks import _load, _outbound

        loaded = _load(reply.pk)
        get_provider(loaded.installation).send_reply(_outbound(loaded), datetime.now(UTC))
    Reply.objects.filter(pk=reply.pk).update(state=Reply.State.SENDING, attempts=1,
                                             state_since=datetime.now(UTC) - timedelta(minutes=1))


def test_an_interrupted_send_that_reached_the_platform_is_recorded_sent_not_repeated(tmp_path: Path) -> None:
    reply = _queue(_case(tmp_path))
    _interrupt(reply, published=True)
    # Within the lease a second job leaves it alone: the first might still be talking to the platform.
    assert send_reply_now(reply.pk) == Reply.State.SENDING
    assert sweep_replies_now(datetime.now(UTC)) == {"redeferred": 0}

    assert sweep_replies_now(datetime.now(UTC) + LATER) == {"sent": 1, "redeferred": 0}
    reply.refresh_from_db()
    assert reply.state == Reply.State.SENT and reply.post is not None
    assert len(read_publish_log(str(tmp_path / "platform.jsonl"))) == 1, "published once"


def test_an_interrupted_send_that_never_arrived_is_sent_once(tmp_path: Path) -> None:
    reply = _queue(_case(tmp_path))
    _interrupt(reply, published=False)
    assert sweep_replies_now(datetime.now(UTC) + LATER)["queued"] == 1
    reply.refresh_from_db()
    assert reply.state == Reply.State.QUEUED and "never reached the platform" in reply.error
    assert send_reply_now(reply.pk) == Reply.State.SENT
    assert [e["key"] for e in read_publish_log(str(tmp_path / "platform.jsonl"))] == [reply.idempotency_key]


def test_when_the_platform_cannot_tell_the_agent_decides_and_it_is_never_resent_by_itself() -> None:
    case = _case(None)  # no publication log: the replay platform cannot answer
    reply = _queue(case)
    _interrupt(reply, published=False)
    assert sweep_replies_now(datetime.now(UTC) + LATER)["unknown"] == 1
    # Sweeping again, and running its send job again, change nothing.
    assert sweep_replies_now(datetime.now(UTC) + 2 * LATER) == {"redeferred": 0}
    assert send_reply_now(reply.pk) == Reply.State.UNKNOWN
    reply.refresh_from_db()
    assert reply.state == Reply.State.UNKNOWN and reply.attempts == 1
    assert Activity.objects.filter(case=case, kind="reply_unknown").count() == 1

    agent = make_user("ana")
    browser = Client()
    browser.force_login(agent)
    page = browser.get(f"/cases/{case.pk}/").content.decode()
    assert "data-reply-unknown" in page
    for action in ("reply-posted", "reply-again", "reply-discard"):
        assert f'data-action="{action}"' in page
    url = f"/cases/{case.pk}/replies/{reply.pk}/settle"
    posted = browser.post(url, {"choice": "posted", "external_id": "1995"}, headers={"HX-Request": "true"})
    assert posted.status_code == 200
    reply.refresh_from_db()
    assert reply.state == Reply.State.SENT and reply.external_id == "1995" and reply.post is not None
    refused = browser.post(url, {"choice": "discard"}, headers={"HX-Request": "true"})
    assert refused.status_code == 422 and "only a failed reply" in refused.content.decode()


def _state(case: Case) -> dict[str, object]:
    fresh = model_to_dict(Case.objects.get(pk=case.pk), fields=["status"])
    fresh["posts"] = case.posts.count()
    fresh["replies"] = {r.pk: r.state for r in case.replies.all()}
    return fresh


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("choice", ["posted", "again", "discard", "unknown"])
def test_each_settling_event_brings_a_stale_client_up_to_date(choice: str) -> None:
    from caredesk.outbox.actions import (
        do_confirm_reply_posted,
        do_discard_reply,
        do_mark_reply_unknown,
        do_send_reply_again,
    )

    case = _case(None)
    reply = _queue(case)
    _interrupt(reply, published=False)
    agent = make_user("ana")
    now = datetime.now(UTC)
    if choice != "unknown":
        do_mark_reply_unknown(Reply.objects.get(pk=reply.pk), "test", now)
    stale = {**_state(case), "replies": {reply.pk: "queued"}}
    mark = Activity.objects.order_by("-id").values_list("id", flat=True).first() or 0
    seen: list[events.Published] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        with transaction.atomic():
            locked = Reply.objects.select_for_update().get(pk=reply.pk)
            {
                "posted": lambda: do_confirm_reply_posted(locked, agent, now, ""),
                "again": lambda: do_send_reply_again(locked, agent, now),
                "discard": lambda: do_discard_reply(locked, agent, now),
                "unknown": lambda: do_mark_reply_unknown(locked, "interrupted", now),
            }[choice]()
            assert seen == []
    finally:
        unsubscribe()
    assert seen, "announced after commit"
    for activity in Activity.objects.filter(case=case, id__gt=mark).order_by("id"):
        stale = events.apply_activity(stale, activity.kind, activity.data)
    expected = _state(case)
    shown = {"sent": "sent", "queued": "queued", "discarded": "discarded", "unknown": "unknown"}
    assert {k: v for k, v in stale.items() if k != "replies"} == {k: v for k, v in expected.items() if k != "replies"}
    assert stale["replies"] == {reply.pk: shown[str(Reply.objects.get(pk=reply.pk).state)]}


def test_a_queued_reply_whose_job_vanished_is_queued_again(tmp_path: Path) -> None:
    reply = _queue(_case(tmp_path))
    ProcrastinateJob.objects.all()._raw_delete(ProcrastinateJob.objects.db)  # the job row lost
    assert sweep_replies_now(datetime.now(UTC) + LATER) == {"redeferred": 1}
    jobs = ProcrastinateJob.objects.filter(task_name="outbox.send_reply", status="todo")
    assert [j.args for j in jobs] == [{"reply_id": reply.pk}]
    # Its job is waiting now: a second sweep defers nothing more.
    assert sweep_replies_now(datetime.now(UTC) + LATER) == {"redeferred": 0}


def test_a_reply_that_the_connector_cannot_send_is_refused_before_it_is_queued() -> None:
    import io
    import tempfile

    from caredesk.ingest.importer import import_file

    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        fh.write(json.dumps({"id": "f1", "text": "my bill is wrong, please help", "author_id": "u9",
                             "created_at": "2026-11-20T10:00:00Z"}) + "\n")
    assert import_file(Path(fh.name), brand_slug="nimbus", file_format=None, batch_size=10, platform="x",
                       progress=False, out=io.StringIO(), err=io.StringIO()) == 0
    case = Case.objects.get()
    agent = make_user("ana")
    with pytest.raises(ReplyError, match="cannot send replies"):
        do_queue_reply(case, case.posts.get(), "Can I help?", agent, datetime.now(UTC))
    assert not Reply.objects.exists()
    browser = Client()
    browser.force_login(agent)
    page = browser.get(f"/cases/{case.pk}/").content.decode()
    assert "data-reply-refusal" in page and "cannot send replies" in page
