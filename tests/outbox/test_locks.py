"""The send job takes its locks in the order an agent's action does (the case, then the reply row alone), so an
agent queueing a reply on a case while the worker records another reply of that case never deadlocks with it.

Locking the reply together with its joined rows (``select_for_update()`` with ``select_related``, no ``of``) put a
``FOR UPDATE`` lock on the post being answered; the agent's commit needs a ``FOR KEY SHARE`` lock on that post
(the new reply's foreign key) while holding the case the worker was waiting for: a deadlock, seen in the worker
kill fault benchmark (bench/worker_kill_fault.py).
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from caredesk.cases.actions import lock_case
from caredesk.cases.models import Case, Post
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import send_reply_now, sweep_replies_now
from factories import ingest, make_installation, make_post, make_user

_LOCK = re.compile(r'FROM "(\w+)".* FOR UPDATE( OF (.*))?$', re.S)


def _case() -> Case:
    installation = make_installation()
    ingest(installation, make_post("@NimbusCare my internet is down", external_id="a"))
    return Case.objects.get()


def _queue(case: Case, text: str = "Can I help?") -> Reply:
    with transaction.atomic():
        return do_queue_reply(case, _customer_post(case), text, make_user(), datetime.now(UTC))


def _customer_post(case: Case) -> Post:
    return case.posts.get(external_id="a")


def _locks(sql: list[str]) -> list[tuple[str, str]]:
    """(table, OF clause) of each SELECT ... FOR UPDATE, in order."""
    found = []
    for statement in sql:
        match = _LOCK.search(statement)
        if match:
            found.append((match.group(1), match.group(3) or ""))
    return found


@pytest.mark.django_db
def test_the_send_and_the_sweeper_lock_the_case_then_the_reply_row_alone() -> None:
    case = _case()
    reply = _queue(case)
    with CaptureQueriesContext(connection) as sent:
        assert send_reply_now(reply.pk) == Reply.State.SENT
    interrupted = _queue(case, "Anything else?")
    Reply.objects.filter(pk=interrupted.pk).update(state=Reply.State.SENDING, attempts=1,
                                                   state_since=datetime.now(UTC) - timedelta(minutes=1))
    with CaptureQueriesContext(connection) as swept:
        sweep_replies_now(datetime.now(UTC) + timedelta(hours=1))
    interrupted.refresh_from_db()
    assert interrupted.state == Reply.State.UNKNOWN  # the replay platform without a log cannot tell

    for captured, claims in ((sent, 1), (swept, 0)):
        locks = _locks([q["sql"] for q in captured.captured_queries])
        reply_locks = [i for i, (table, _) in enumerate(locks) if table == "outbox_reply"]
        assert reply_locks, "the reply row is locked"
        assert all(locks[i][1] == '"outbox_reply"' for i in reply_locks), f"joined rows locked too: {locks}"
        # The claim (queued -> sending) writes the reply alone; every lock that records an outcome, which
        # writes to the case too, comes right after the case's lock.
        assert reply_locks[:claims] == list(range(claims)), locks
        assert all(locks[i - 1] == ("cases_case", "") for i in reply_locks[claims:]), f"reply before case: {locks}"


def _waiting_on_a_lock(exclude_pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else one snapshot for the whole transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> %s"
            " AND wait_event_type = 'Lock'",
            [exclude_pid],
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_queueing_a_reply_while_the_worker_records_another_on_the_same_case_does_not_deadlock() -> None:
    case = _case()
    first = _queue(case)
    results: list[object] = []

    def worker() -> None:
        try:
            results.append(send_reply_now(first.pk))
        except Exception as exc:  # a deadlock, reported below
            results.append(exc)
        finally:
            connections.close_all()

    agent = make_user()
    thread = threading.Thread(target=worker)
    try:
        with transaction.atomic():  # the agent: the case locked, a reply to the same post queued
            locked = lock_case(case.pk)
            second = do_queue_reply(locked, _customer_post(case), "One more thing", agent, datetime.now(UTC))
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                own_pid = cursor.fetchone()[0]
            thread.start()
            deadline = time.monotonic() + 10
            while not _waiting_on_a_lock(own_pid):  # the worker waits for the case the agent holds
                assert time.monotonic() < deadline, "the worker never waited for the agent's case lock"
                time.sleep(0.05)
            # Leaving the block commits; the new reply's foreign keys are checked now (they are deferred).
    finally:
        if thread.is_alive() or thread.ident is not None:
            thread.join(timeout=30)
    assert results == [Reply.State.SENT]
    assert Reply.objects.get(pk=second.pk).state == Reply.State.QUEUED
