"""Finished background jobs do not pile up: an hourly job removes them (succeeded after an hour, others a week)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from procrastinate.contrib.django import app

from caredesk.connectors.tasks import poll_all
from caredesk.jobs.tasks import KEEP_UNSUCCESSFUL_HOURS, remove_finished, remove_finished_jobs
from caredesk.jobs.worker import run_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _delete_all_jobs() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


@pytest.fixture(autouse=True)
def _no_jobs_around() -> Iterator[None]:
    """procrastinate's tables are not Django's, so flushes between tests leave their rows (a worker started by the
    browser tests defers the periodic poll, for one): each test here starts and ends without any."""
    _delete_all_jobs()
    yield
    _delete_all_jobs()


def _jobs() -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, status FROM procrastinate_jobs")
        return dict(cursor.fetchall())


def _finished_job(status: str, hours_ago: float) -> int:
    """A job that reached ``status`` that many hours ago, as procrastinate records it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
            "VALUES ('connectors', 'connectors.poll_all', '{}', 'todo') RETURNING id"
        )
        job_id = cursor.fetchone()[0]
        # Status changes write their own events (triggers); the latest event's time is the job's finishing time.
        cursor.execute("UPDATE procrastinate_jobs SET status = %s WHERE id = %s", [status, job_id])
        cursor.execute(
            "UPDATE procrastinate_events SET at = NOW() - make_interval(secs => %s) WHERE job_id = %s",
            [hours_ago * 3600, job_id],
        )
    return job_id


def test_the_worker_runs_queued_jobs() -> None:
    job_id = poll_all.defer(timestamp=0)  # no installations: the job succeeds at once
    assert _jobs()[job_id] == "todo"
    run_worker(1, wait=False, install_signal_handlers=False)
    assert _jobs()[job_id] == "succeeded"


def test_the_hourly_job_removes_old_finished_jobs_and_keeps_recent_failures() -> None:
    old_failure = _finished_job("failed", KEEP_UNSUCCESSFUL_HOURS + 1)
    recent_failure = _finished_job("failed", KEEP_UNSUCCESSFUL_HOURS - 1)
    old_success = _finished_job("succeeded", 2)
    recent_success = _finished_job("succeeded", 0.1)
    old_cancel = _finished_job("cancelled", KEEP_UNSUCCESSFUL_HOURS + 1)
    async_to_sync(remove_finished_jobs)(app.job_manager)
    kept = set(_jobs())
    assert {recent_failure, recent_success} <= kept
    assert not {old_failure, old_success, old_cancel} & kept


def test_the_cleanup_is_scheduled_every_hour() -> None:
    periodic = [p for p in app.periodic_registry.periodic_tasks.values() if p.task is remove_finished]
    assert [p.cron for p in periodic] == ["23 * * * *"]


def test_jobs_of_a_worker_that_stopped_heartbeating_are_retried() -> None:
    from caredesk.outbox.tasks import retry_stalled

    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (NOW() - INTERVAL '10 minutes') "
                       "RETURNING id")
        dead_worker = cursor.fetchone()[0]
        cursor.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (NOW()) RETURNING id")
        live_worker = cursor.fetchone()[0]
        ids = []
        for worker in (dead_worker, live_worker):
            cursor.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
                "VALUES ('outbox', 'outbox.send_reply', '{\"reply_id\": 1}', 'todo') RETURNING id"
            )
            job_id = cursor.fetchone()[0]
            cursor.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
                           [worker, job_id])
            ids.append(job_id)
    assert async_to_sync(retry_stalled)(app.job_manager) == 1
    assert _jobs() == {ids[0]: "todo", ids[1]: "doing"}
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_workers WHERE id IN (%s, %s)", [dead_worker, live_worker])


def test_a_stalled_send_whose_reply_was_queued_again_ends_and_the_other_stalled_jobs_go_back() -> None:
    """A worker killed mid-send leaves its job *doing*; the sweeper may queue the reply again (a new job under the
    same queueing lock) before the stalled job is retried. Retrying it then would break the lock's uniqueness: it
    ends instead, and the retry goes on with the other stalled jobs."""
    from caredesk.outbox.tasks import retry_stalled

    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (NOW() - INTERVAL '10 minutes') "
                       "RETURNING id")
        dead_worker = cursor.fetchone()[0]
        ids = []
        for reply_id in (1, 2):
            cursor.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock, status) "
                "VALUES ('outbox', 'outbox.send_reply', %s, %s, 'todo') RETURNING id",
                [f'{{"reply_id": {reply_id}}}', f"reply:{reply_id}"],
            )
            job_id = cursor.fetchone()[0]
            cursor.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
                           [dead_worker, job_id])
            ids.append(job_id)
        cursor.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, queueing_lock, status) "
            "VALUES ('outbox', 'outbox.send_reply', '{\"reply_id\": 1}', 'reply:1', 'todo') RETURNING id"
        )
        requeued = cursor.fetchone()[0]
    assert async_to_sync(retry_stalled)(app.job_manager) == 1
    assert _jobs() == {ids[0]: "aborted", ids[1]: "todo", requeued: "todo"}
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_workers WHERE id = %s", [dead_worker])
