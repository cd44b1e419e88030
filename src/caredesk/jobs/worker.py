"""Running a procrastinate worker on caredesk's database (``caredesk worker``)."""

from __future__ import annotations

from collections.abc import Sequence


def run_worker(
    concurrency: int = 4, *, wait: bool = True, install_signal_handlers: bool = True,
    queues: Sequence[str] | None = None,
) -> None:
    """Process jobs until stopped; with ``wait=False``, until the queue is empty. ``queues``: only these (default
    every queue), so replies can have workers of their own that a backlog of polls never delays."""
    from procrastinate.contrib.django import app

    # The Django connector cannot LISTEN; the worker gets a psycopg connector on the same database, as
    # procrastinate's own management command does.
    with app.replace_connector(app.connector.get_worker_connector()) as worker_app:  # type: ignore[attr-defined]
        worker_app.run_worker(
            concurrency=concurrency, wait=wait, install_signal_handlers=install_signal_handlers,
            listen_notify=wait, queues=list(queues) if queues else None,
        )
