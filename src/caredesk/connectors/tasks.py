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
changes its credentials. A provider that can also stream is polled only while no ``caredesk listen`` holds its
stream (the fallback); one that only streams is never polled.

A webhook delivery is processed by :func:`process_payload_job`, deferred in the transaction that stored it.
Compliance sweeps (X's deletions and edits, :mod:`caredesk.connectors.compliance`) run from :func:`compliance_all`.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import httpx
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued

from caredesk.connectors.actions import do_record_auth_revoked, do_record_poll_failure, lock_installation
from caredesk.connectors.base import AuthRevoked, Capability, ConnectorError, RateLimited
from caredesk.connectors.costs.ledger import budget_stop, do_record_budget_stop
from caredesk.connectors.costs.prices import Operation
from caredesk.connectors.crypto import CredentialsUnreadable
from caredesk.connectors.models import ConnectorInstallation, ConnectorLease
from caredesk.connectors.processing import apply_result, process_payload
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.runtime import get_provider

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
        if _streaming_ids(installation_id):
            return 0  # streamed by caredesk listen
        if installation.last_polled_at and (
            (now - installation.last_polled_at).total_seconds() < settings.CAREDESK_POLL_INTERVAL * 0.5
        ):
            return 0
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
        except Exception as exc:
            message = _failure_message(exc)
            log.warning("installation %s: poll failed: %s", installation_id, message,
                        exc_info=not isinstance(exc, ConnectorError | httpx.HTTPError | CredentialsUnreadable))
            with transaction.atomic():
                failed = ConnectorInstallation.objects.select_for_update(no_key=True).get(pk=installation_id)
                if isinstance(exc, AuthRevoked):
                    do_record_auth_revoked(failed, message, now)
                else:
                    retry_at = (exc.retry_at if isinstance(exc, RateLimited)
                                else now + poll_backoff(failed.consecutive_failures + 1))
                    do_record_poll_failure(failed, message, now, retry_at=retry_at)
            return 0
        return report.received
    finally:
        _unlock(installation_id)


def pollable_installation_ids() -> list[int]:
    ids = []
    rows = ConnectorInstallation.objects.filter(enabled=True, auth_revoked_at=None).values_list("pk", "provider_key")
    streaming = _streaming_ids()
    for pk, key in rows:
        try:
            cls = get_provider_class(key)
        except ConnectorError:
            continue
        if Capability.POLL in cls.capabilities and pk not in streaming:
            ids.append(pk)
    return ids


def _streaming_ids(installation_id: int | None = None) -> set[int]:
    """Installations whose stream a ``caredesk listen`` process holds now: a provider that can both stream and
    poll is polled only as the fallback, while nobody streams it, so two readers never race on one cursor."""
    leases = ConnectorLease.objects.filter(expires_at__gt=datetime.now(UTC))
    if installation_id is not None:
        leases = leases.filter(installation_id=installation_id)
    return set(leases.values_list("installation_id", flat=True))


@app.task(name="connectors.poll_installation", queue="connectors", pass_context=False)
def poll_one(installation_id: int) -> None:
    close_old_connections()
    try:
        with httpx.Client(timeout=POLL_TIMEOUT_SECONDS) as http:
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
    """Process a stored webhook delivery; a fault leaves it *failed* with its error, for ``caredesk connector
    retry`` (the job itself does not retry: the same payload would fail the same way)."""
    close_old_connections()
    try:
        process_payload(payload_id, datetime.now(UTC))
    finally:
        close_old_connections()


def defer_processing(payload_id: int) -> None:
    """Defer the job that processes a stored payload, in the caller's transaction (the one that stored it)."""
    process_payload_job.defer(payload_id=payload_id)


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
