"""A running worker's job threads keep their database connection between jobs (each job opened a new
PostgreSQL backend before); the settings come back as they were when the worker stops."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from caredesk.jobs.worker import JOB_CONNECTION_SECONDS, kept_job_connections

pytestmark = pytest.mark.django_db(transaction=True)


def _backend_pids_of_two_jobs() -> list[int]:
    """What two jobs on one job thread see: the backend of each, with Django's end-of-job close between."""
    from django.db import close_old_connections

    pids: list[int] = []

    def job_thread() -> None:
        for _ in range(2):
            close_old_connections()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone()[0])
            close_old_connections()
        connection.close()

    thread = threading.Thread(target=job_thread)
    thread.start()
    thread.join()
    return pids


def test_job_threads_reuse_their_connection_while_a_worker_runs() -> None:
    before = connections.settings["default"].get("CONN_MAX_AGE")
    with kept_job_connections():
        assert connections.settings["default"]["CONN_MAX_AGE"] == JOB_CONNECTION_SECONDS
        first, second = _backend_pids_of_two_jobs()
        assert first == second
    assert connections.settings["default"].get("CONN_MAX_AGE") == before
    first, second = _backend_pids_of_two_jobs()
    assert first != second  # without it, each job had a backend of its own
