"""Background polling of connector installations, on procrastinate.

A periodic job defers one ``connectors.poll_installation`` job per enabled, pollable installation, each with its
own queueing lock, so one installation that fails, hangs or raises cannot delay or stop the others, and any
number of workers on any number of machines share them.

One poll (:func:`poll_installation`):

1. takes a session-level advisory lock for the installation (``pg_try_advisory_lock``): a second worker skips it;
   the lock dies with the connection, so a killed worker holds nothing;
2. reads the cursor, then calls the platform *outside any transaction*: a slow platform holds no row lock and no
   open transaction;
3. stores the posts and the new cursor in one short transaction, under the installation row lock, only if the
   cursor is still the one it fetched from (else another poll already stored that page).

Any exception is recorded as that installation's failure (health, last error), never raised into the worker.
The platform's limits are obeyed: :class:`RateLimited` stores its ``retry_at`` and no poll runs before it; any
other failure backs off exponentially with the number of failures in a row (``retry_at`` again, up to
``MAX_BACKOFF_SECONDS``); :class:`AuthRevoked` marks the installation failing and stops its polls until an admin
changes its credentials. Which installations are polled follows the listening ladder
(:mod:`caredesk.connectors.rungs`): those whose rung in use is *poll* (a provider that can also stream is polled
only while no ``caredesk listen`` holds its stream), and those on *webhook* for a catch-up poll now and then; a
poll the platform :class:`Refused` fails the poll rung for a while. Reads stop at the monthly budget before the
platform is called (:func:`caredesk.connectors.costs.ledger.budget_stop`).

A webhook delivery is processed by :func:`process_pending_job`, deferred in the transaction that stored it: one
job per installation at a time, taking its backlog in bounded turns so that one brand's flood does not starve
the others.
Compliance sweeps (X's deletions and edits, :mod:`caredesk.connectors.compliance`) run from :func:`compliance_all`.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued

from caredesk.connectors.actions import (
    do_record_auth_revoked,
    do_record_poll_failure,
    do_record_rung_ok,
    do_record_rung_refused,
    lock_installation,
)
from caredesk.connectors.base import AuthRevoked, Capability, ConnectorError, RateLimited, Refused, Rung
from caredesk.connectors.costs.ledger import budget_stop, do_record_budget_stop
from caredesk.connectors.costs.prices import Operation
from caredesk.connectors.crypto import CredentialsUnreadable
from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.connectors.processing import apply_result, process_backlog, process_payload
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.rungs import held_streams, poll_due
from caredesk.connectors.runtime import get_provider
from caredesk.ops.logs import log_context

log = logging.getLogger(__name__)

# Advisory lock keys are (namespace, id) pairs; this namespace is caredesk's polling.
_POLL_LOCK_NAMESPACE = 0x6361_7265  # "care"
POLL_TIMEOUT_SECONDS = 20
MAX_BACKOFF_SECONDS = 300.0


def poll_backoff(failures: int) -> timedelta:
    """How long to leave an installation alone after ``failures`` failed polls in a row (jittered)."""
    base = float(settings.CAREDESK_POLL_INTERVAL) * 2 ** max(0, failures - 1)
    return timedelta(seconds=min(MAX_BACKOFF_SECONDS, base) * random.uniform(0.75, 1.0))  # noqa: S311


def _try_lock(installation_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_POLL_LOCK_NAMESPACE, installation_id])
        return bool(cursor.fetchone()[0])


def _unlock(installation_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_POLL_LOCK_NAMESPACE, installation_id])


def _failure_message(exc: BaseException) -> str:
    if isinstance(exc, CredentialsUnreadable):
        return str(exc)
    if isinstance(exc, ConnectorError | httpx.HTTPError):
        return str(exc) or type(exc).__name__
    # Unexpected: a bug or a platform answer nobody foresaw. Recorded, not raised, so the others keep polling.
    return f"unexpected error: {type(exc).__name__}: {exc}"


def poll_installation(installation_id: int, now: datetime, http: httpx.Client | None = None) -> int | None:
    """Poll one installation. Returns the number of new posts, or None when another worker is polling it.

    Must not run inside a transaction: the platform is called between two of its own.
    """
    if not _try_lock(installation_id):
        return None
    try:
        installation = (
            ConnectorInstallation.objects.select_related("brand")
            .filter(pk=installation_id, enabled=True, auth_revoked_at=None)
            .first()
        )
        if installation is None:
            return None
        if installation.retry_at and installation.retry_at > now:
            return 0  # rate limited, or backing off after failures
        if not poll_due(installation, now, stream_held=bool(held_streams([installation_id]))):
            return 0  # streamed by caredesk listen, or a webhook's catch-up poll is not due yet
        cursor = dict(installation.cursor)
        try:
            stop = budget_stop(installation, Operation.POST_READ, now)
            if stop is not None:  # before the platform is called: the read that would pass the budget never starts
                with transaction.atomic():
                    do_record_budget_stop(lock_installation(installation_id), stop, now)
                return 0
            provider = get_provider(installation, http)
            result = provider.fetch(cursor, now)  # the network call: outside any transaction
            with transaction.atomic():
                locked = lock_installation(installation_id)
                if dict(locked.cursor) != cursor:
                    return 0  # stored meanwhile (a poll from before the lock was taken): nothing to add
                report = apply_result(locked, provider.platform, result, now, polled=True)
                do_record_rung_ok(locked, Rung.POLL, now)
        except Exception as exc:
            message = _failure_message(exc)
            log.warning("installation %s: poll failed: %s", installation_id, message,
                        exc_info=not isinstance(exc, ConnectorError | httpx.HTTPError | CredentialsUnreadable))
            with transaction.atomic():
                failed = ConnectorInstallation.objects.select_for_update(no_key=True).get(pk=installation_id)
                if isinstance(exc, AuthRevoked):
                    do_record_auth_revoked(failed, message, now)
                else:
                    if isinstance(exc, Refused):  # polling is not allowed: the next rung down, for a while
                        do_record_rung_refused(failed, Rung.POLL, message, now)
                    retry_at = (exc.retry_at if isinstance(exc, RateLimited)
                                else now + poll_backoff(failed.consecutive_failures + 1))
                    do_record_poll_failure(failed, message, now, retry_at=retry_at)
            return 0
        return report.received
    finally:
        _unlock(installation_id)


def pollable_installation_ids(now: datetime | None = None) -> list[int]:
    """Enabled installations whose rung in use is *poll*, or *webhook* with a catch-up poll due (see
    :func:`caredesk.connectors.rungs.poll_due`); the rung each uses now is stored on the way."""
    now = now or datetime.now(UTC)
    ids = []
    rows = ConnectorInstallation.objects.select_related("brand").filter(enabled=True, auth_revoked_at=None)
    streaming = held_streams()
    for installation in rows:
        # Asked of every installation, so that the rung each uses is kept up to date even where nothing polls.
        if not poll_due(installation, now, stream_held=installation.pk in streaming):
            continue
        try:
            cls = get_provider_class(installation.provider_key)
        except ConnectorError:
            continue
        if Capability.POLL in cls.capabilities:
            ids.append(installation.pk)
    return ids


@app.task(name="connectors.poll_installation", queue="connectors", pass_context=False)
def poll_one(installation_id: int) -> None:
    close_old_connections()
    try:
        with log_context(installation_id=installation_id), httpx.Client(timeout=POLL_TIMEOUT_SECONDS) as http:
            poll_installation(installation_id, datetime.now(UTC), http)
    finally:
        close_old_connections()


def defer_polls() -> int:
    """Defer a poll job for every pollable installation that has none waiting; returns how many were deferred."""
    deferred = 0
    for installation_id in pollable_installation_ids():
        try:
            with transaction.atomic():  # a savepoint: the refused insert must not abort the caller's transaction
                poll_one.configure(queueing_lock=f"poll:{installation_id}").defer(installation_id=installation_id)
            deferred += 1
        except AlreadyEnqueued:
            pass  # its previous poll has not started yet
    return deferred


@app.periodic(cron="* * * * * */2", periodic_id="poll-connectors")
@app.task(name="connectors.poll_all", queue="connectors", queueing_lock="connectors.poll_all", pass_context=False)
def poll_all(timestamp: int) -> None:
    close_old_connections()
    try:
        defer_polls()
    finally:
        close_old_connections()


@app.task(name="connectors.process_payload", queue="connectors", pass_context=False)
def process_payload_job(payload_id: int) -> None:
    """Process one stored delivery (jobs deferred before :func:`process_pending_job` existed still run)."""
    close_old_connections()
    try:
        process_payload(payload_id, datetime.now(UTC))
    finally:
        close_old_connections()


# How much of one installation's backlog one job takes before it goes to the back of the queue: a flood for one
# brand is taken in turns with the other brands' work instead of ahead of all of it.
TURN_PAYLOADS = 20
TURN_SECONDS = 1.0
# Consecutive pending payloads are stored together up to this many posts: a backlog is taken in sets (one round of
# queries for each), with transactions still short.
BATCH_POSTS = 1_000


def process_pending(installation_id: int, *, max_payloads: int | None = None,
                    max_seconds: float | None = None) -> bool:
    """Process the installation's pending payloads in the order they were stored, for one turn (at most
    ``max_payloads`` of them, or until ``max_seconds`` passed); a fault leaves that payload *failed* with its error
    and the next ones still run. Returns whether some are still pending. Must not run inside a transaction:
    consecutive payloads are committed together, in sets of up to ``BATCH_POSTS`` posts (see
    :func:`~caredesk.connectors.processing.process_backlog`)."""
    max_payloads = TURN_PAYLOADS if max_payloads is None else max_payloads
    max_seconds = TURN_SECONDS if max_seconds is None else max_seconds
    started = time.monotonic()
    ids = list(
        RawPayload.objects.filter(installation_id=installation_id, status=RawPayload.Status.PENDING)
        .order_by("pk").values_list("pk", flat=True)[: max_payloads + 1]
    )
    done = 0
    while done < min(len(ids), max_payloads):
        done += process_backlog(installation_id, ids[done:max_payloads], datetime.now(UTC), max_posts=BATCH_POSTS)
        if time.monotonic() - started >= max_seconds:
            break
    return len(ids) > done or _any_pending(installation_id)


def _any_pending(installation_id: int) -> bool:
    return RawPayload.objects.filter(installation_id=installation_id, status=RawPayload.Status.PENDING).exists()


@app.task(name="connectors.process_pending", queue="connectors", pass_context=False)
def process_pending_job(installation_id: int) -> None:
    """One turn of an installation's stored deliveries; the rest goes to the back of the queue as a new job, so
    the other installations' jobs, deferred meanwhile, run first."""
    close_old_connections()
    try:
        if process_pending(installation_id):
            defer_pending(installation_id)
    finally:
        close_old_connections()


def defer_pending(installation_id: int) -> None:
    """Make sure a job will process the installation's pending payloads.

    Its queueing lock keeps at most one such job waiting per installation (a burst of deliveries is one job, and
    one job's turn takes many of them); its lock runs them one at a time, in the order stored (a reply after
    the post it answers: threading depends on it), while any number of worker processes share the installations.
    """
    try:
        with transaction.atomic():  # a savepoint: the refused insert must not abort the caller's transaction
            process_pending_job.configure(
                queueing_lock=f"process:{installation_id}", lock=f"installation:{installation_id}"
            ).defer(installation_id=installation_id)
    except AlreadyEnqueued:
        pass  # a waiting job will take it: it reads the pending payloads when it starts


@app.task(name="connectors.compliance_sweep", queue="connectors", pass_context=False)
def sweep_one(installation_id: int) -> None:
    from caredesk.connectors.compliance import sweep_installation

    close_old_connections()
    try:
        with httpx.Client(timeout=POLL_TIMEOUT_SECONDS) as http:
            try:
                sweep_installation(installation_id, datetime.now(UTC), http)
            except (ConnectorError, httpx.HTTPError) as exc:
                log.warning("installation %s: compliance sweep failed, retried at the next run: %s",
                            installation_id, exc)
    finally:
        close_old_connections()


@app.periodic(cron="7 * * * *", periodic_id="compliance-sweeps")
@app.task(name="connectors.compliance_all", queue="connectors", queueing_lock="connectors.compliance_all",
          pass_context=False)
def compliance_all(timestamp: int) -> None:
    from caredesk.connectors.compliance import defer_sweeps

    close_old_connections()
    try:
        defer_sweeps(datetime.now(UTC))
    finally:
        close_old_connections()
