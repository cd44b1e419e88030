"""Running a procrastinate worker on caredesk's database (``caredesk worker``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

# How often an idle worker asks for jobs besides being woken by new ones. procrastinate wakes workers when a job
# is inserted only; a job held back by its lock (an installation's next turn, deferred while the previous one ran)
# becomes runnable when that one ends, unannounced, and waited for this poll (5 s by default): the delay from a
# stored delivery to the agent's screen. One cheap query a quarter second per idle worker.
FETCH_POLL_SECONDS = 0.25
# How long a job thread keeps its Django connection between jobs. With the default (0) every job's
# ``close_old_connections()`` closed it and the next job opened a new one: a PostgreSQL backend started per job
# (some 5-7 ms, CPU on both sides), a fifth of what a stream's batch of 50 posts costs to process.
JOB_CONNECTION_SECONDS = 300


@contextmanager
def kept_job_connections() -> Iterator[None]:
    """Let job threads reuse their connection (checked before reuse) unless a pool already does it; the settings
    are restored afterwards (a test that runs a worker in its own process must not change the others)."""
    from django.db import connections

    saved: dict[str, tuple[Any, Any]] = {}
    for alias in connections:
        settings = connections.settings[alias]
        if "pool" in settings.get("OPTIONS", {}) or settings.get("CONN_MAX_AGE"):
            continue  # Django refuses persistent connections with a pool; an explicit setting wins
        saved[alias] = (settings.get("CONN_MAX_AGE"), settings.get("CONN_HEALTH_CHECKS"))
        settings["CONN_MAX_AGE"] = JOB_CONNECTION_SECONDS
        settings["CONN_HEALTH_CHECKS"] = True
    try:
        yield
    finally:
        for alias, (max_age, health) in saved.items():
            connections.settings[alias]["CONN_MAX_AGE"] = max_age
            connections.settings[alias]["CONN_HEALTH_CHECKS"] = health


def run_worker(
    concurrency: int = 4, *, wait: bool = True, install_signal_handlers: bool = True,
    queues: Sequence[str] | None = None,
) -> None:
    """Process jobs until stopped; with ``wait=False``, until the queue is empty. ``queues``: only these (default
    every queue), so replies can have workers of their own that a backlog of polls never delays."""
    from procrastinate.contrib.django import app

    from caredesk.triage.model.classifier import default_engine

    # The triage model loads before the first job (half a second of CPU), not inside the first batch's turn.
    default_engine()

    # The Django connector cannot LISTEN; the worker gets a psycopg connector on the same database, as
    # procrastinate's own management command does.
    # Only a worker that runs until stopped keeps connections: one that drains the queue and returns (tests,
    # `--once`) would leave its job threads' connections open behind it.
    kept = kept_job_connections() if wait else nullcontext()
    with kept, app.replace_connector(app.connector.get_worker_connector()) as worker_app:  # type: ignore[attr-defined]
        worker_app.run_worker(
            concurrency=concurrency, wait=wait, install_signal_handlers=install_signal_handlers,
            listen_notify=wait, fetch_job_polling_interval=FETCH_POLL_SECONDS, queues=list(queues) if queues else None,
        )
