"""Running a procrastinate worker on caredesk's database (``caredesk worker``)."""

from __future__ import annotations

from collections.abc import Sequence

# How often an idle worker asks for jobs besides being woken by new ones. procrastinate wakes workers when a job
# is inserted only; a job held back by its lock (an installation's next turn, deferred while the previous one ran)
# becomes runnable when that one ends, unannounced, and waited for this poll (5 s by default): the delay from a
# stored delivery to the agent's screen. One cheap query a quarter second per idle worker.
FETCH_POLL_SECONDS = 0.25


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
    with app.replace_connector(app.connector.get_worker_connector()) as worker_app:  # type: ignore[attr-defined]
        worker_app.run_worker(
            concurrency=concurrency, wait=wait, install_signal_handlers=install_signal_handlers,
            listen_notify=wait, fetch_job_polling_interval=FETCH_POLL_SECONDS, queues=list(queues) if queues else None,
        )
