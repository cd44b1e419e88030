"""``/metrics`` for Prometheus, computed from the database at scrape time.

Web servers, workers and listeners are many stateless processes, so a counter kept in one process's memory would
describe that process only, and vanish with it. Everything here is read from PostgreSQL when Prometheus scrapes
(a custom collector, :class:`DatabaseCollector`), so any web server answers for the whole desk, and two scrapes of
two servers agree. Each query is cheap (an index, a small table or PostgreSQL's own statistics) and all run under
a statement timeout; reads go to the replica when one is configured (:mod:`caredesk.config.replica`), all but the
posts counter, which reads the primary's statistics (a replica keeps its own, without the rows it replays).

The endpoint answers only ``Authorization: Bearer $CAREDESK_METRICS_TOKEN``; without that variable it is off (404).
Metric families (see docs/deployment.md for what to alert on):

- ``caredesk_posts_inserted_total``: posts stored, every installation together (PostgreSQL's insert counter of the
  posts table; ``rate()`` of it is the ingest rate; it restarts from 0 after a statistics reset, as a counter may).
- ``caredesk_installation_posts_received_total{installation,brand,provider}``: posts received per installation.
- ``caredesk_installation_lag_seconds{...}``: now minus the newest post's platform time, per installation.
- ``caredesk_installation_consecutive_failures{...}``, ``caredesk_installation_up{...}`` (health is ok).
- ``caredesk_jobs{queue,status}``: the job queue's depth, jobs to do and being done, per queue.
- ``caredesk_replies{state}``: replies by outcome (sent, failed, delivery unknown, queued, sending, discarded).
- ``caredesk_first_reply_overdue_cases{brand}``: open cases that still need a first reply after
  ``CAREDESK_METRICS_FIRST_REPLY_SECONDS`` (default 3600). caredesk has no SLA clocks yet (issue 12); this is the
  stand-in until ``caredesk_sla_breaches`` can count breaches of a brand's own targets.
- ``caredesk_metrics_scrape_errors``: 1 when a query failed or timed out (the others are still reported).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, transaction
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from caredesk.config.replica import replica_reads

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT_MS = 2000
_INSTALLATION_LABELS = ["installation", "name", "brand", "provider"]


def metrics_token() -> str:
    return os.environ.get("CAREDESK_METRICS_TOKEN", "").strip()


def first_reply_threshold() -> timedelta:
    return timedelta(seconds=float(os.environ.get("CAREDESK_METRICS_FIRST_REPLY_SECONDS", "3600")))


def token_allows(header: str) -> bool:
    """Whether an ``Authorization`` header carries the metrics token (compared in constant time)."""
    expected = metrics_token()
    scheme, _, given = header.partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), expected)


_INSTALLATIONS_SQL = """
SELECT i.id, i.name, b.slug, i.provider_key, i.posts_received, i.consecutive_failures, i.health,
       extract(epoch FROM (%s - i.newest_post_at))
FROM connectors_connectorinstallation i JOIN accounts_brand b ON b.id = i.brand_id
WHERE i.enabled
ORDER BY i.id
"""
_POSTS_INSERTED_SQL = "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = 'cases_post'"
_JOBS_SQL = """
SELECT queue_name, status::text, count(*) FROM procrastinate_jobs
WHERE status IN ('todo', 'doing') GROUP BY 1, 2
"""
_REPLIES_SQL = "SELECT state, count(*) FROM outbox_reply GROUP BY state"
_OVERDUE_SQL = """
SELECT b.slug, count(c.id) FROM accounts_brand b
LEFT JOIN cases_case c ON c.brand_id = b.id AND c.status IN ('new', 'open') AND c.needs_reply
     AND c.first_response_at IS NULL AND c.last_inbound_at < %s
GROUP BY b.slug
"""
REPLY_STATES = ("queued", "sending", "sent", "failed", "unknown", "discarded")


class DatabaseCollector(Collector):
    """Reads every metric from the database at each scrape (see the module's docstring)."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now

    def collect(self) -> Iterator[Metric]:
        now = self._now or datetime.now(UTC)
        errors = 0
        with replica_reads() as replica:
            # PostgreSQL's statistics counters are per server: a replica's count only what ran on it (its replayed
            # inserts are not counted, so there the posts counter reads 0), so that one comes from the primary.
            for produce, alias in ((self._installations, replica), (self._posts, "default"), (self._jobs, replica),
                                   (self._replies, replica), (self._overdue, replica)):
                try:
                    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
                        cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                        yield from produce(cursor, now)
                except DatabaseError as exc:
                    errors += 1
                    log.warning("metrics: %s failed: %s", produce.__name__.strip("_"), str(exc).strip())
        yield GaugeMetricFamily("caredesk_metrics_scrape_errors", "Metric queries that failed in this scrape.",
                                value=errors)

    def _installations(self, cursor: Any, now: datetime) -> Iterator[Metric]:
        received = CounterMetricFamily("caredesk_installation_posts_received",
                                       "Posts received per connector installation.", labels=_INSTALLATION_LABELS)
        lag = GaugeMetricFamily("caredesk_installation_lag_seconds",
                                "Now minus the platform time of the newest post received, per installation.",
                                labels=_INSTALLATION_LABELS)
        failures = GaugeMetricFamily("caredesk_installation_consecutive_failures",
                                     "Failed polls or connections in a row, per installation.",
                                     labels=_INSTALLATION_LABELS)
        up = GaugeMetricFamily("caredesk_installation_up", "1 when the installation's health is ok.",
                               labels=_INSTALLATION_LABELS)
        cursor.execute(_INSTALLATIONS_SQL, [now])
        for pk, name, brand, provider, posts, fails, health, lag_seconds in cursor.fetchall():
            labels = [str(pk), name, brand, provider]
            received.add_metric(labels, posts)
            failures.add_metric(labels, fails)
            up.add_metric(labels, 1 if health == "ok" else 0)
            if lag_seconds is not None:
                lag.add_metric(labels, float(lag_seconds))
        yield from (received, lag, failures, up)

    def _posts(self, cursor: Any, now: datetime) -> Iterator[Metric]:
        cursor.execute(_POSTS_INSERTED_SQL)
        yield CounterMetricFamily("caredesk_posts_inserted", "Posts stored, all installations together.",
                                  value=cursor.fetchone()[0])

    def _jobs(self, cursor: Any, now: datetime) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("caredesk_jobs", "Background jobs to do or being done, per queue.",
                                 labels=["queue", "status"])
        cursor.execute(_JOBS_SQL)
        for queue, status, n in cursor.fetchall():
            jobs.add_metric([queue, status], n)
        yield jobs

    def _replies(self, cursor: Any, now: datetime) -> Iterator[Metric]:
        replies = GaugeMetricFamily("caredesk_replies", "Replies by state (their outcome once settled).",
                                    labels=["state"])
        cursor.execute(_REPLIES_SQL)
        counts = dict(cursor.fetchall())
        for state in REPLY_STATES:  # every state, 0 included, so an alert on "failed" has a series to watch
            replies.add_metric([state], counts.get(state, 0))
        yield replies

    def _overdue(self, cursor: Any, now: datetime) -> Iterator[Metric]:
        overdue = GaugeMetricFamily(
            "caredesk_first_reply_overdue_cases",
            "Open cases still waiting for a first reply after CAREDESK_METRICS_FIRST_REPLY_SECONDS "
            "(a stand-in for SLA breaches until SLA clocks exist).", labels=["brand"])
        cursor.execute(_OVERDUE_SQL, [now - first_reply_threshold()])
        for brand, n in cursor.fetchall():
            overdue.add_metric([brand], n)
        yield overdue


def registry(now: datetime | None = None) -> CollectorRegistry:
    """A registry of the database collector alone: a web process's own CPU and memory would describe one
    process of many, so prometheus_client's default process collectors are left out."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DatabaseCollector(now))
    return reg
