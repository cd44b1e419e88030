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
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued

from caredesk.connectors.actions import do_record_poll_failure, do_record_poll_success, lock_installation
from caredesk.connectors.base import Capability, ConnectorError
from caredesk.connectors.crypto import CredentialsUnreadable
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.runtime import get_provider
from caredesk.ingest.pipeline import ingest_posts

log = logging.getLogger(__name__)

# Advisory lock keys are (namespace, id) pairs; this namespace is caredesk's polling.
_POLL_LOCK_NAMESPACE = 0x6361_7265  # "care"
POLL_TIMEOUT_SECONDS = 20


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
            ConnectorInstallation.objects.select_related("brand").filter(pk=installation_id, enabled=True).first()
        )
        if installation is None:
            return None
        if installation.last_polled_at and (
            (now - installation.last_polled_at).total_seconds() < settings.CAREDESK_POLL_INTERVAL * 0.5
        ):
            return 0
        cursor = dict(installation.cursor)
        try:
            provider = get_provider(installation, http)
            result = provider.fetch(cursor, now)  # the network call: outside any transaction
            with transaction.atomic():
                locked = lock_installation(installation_id)
                if dict(locked.cursor) != cursor:
                    return 0  # stored meanwhile (a poll from before the lock was taken): nothing to add
                report = ingest_posts(locked, provider.platform, result.posts, now)
                do_record_poll_success(locked, result.cursor, report.received, now)
        except Exception as exc:
            message = _failure_message(exc)
            log.warning("installation %s: poll failed: %s", installation_id, message,
                        exc_info=not isinstance(exc, ConnectorError | httpx.HTTPError | CredentialsUnreadable))
            with transaction.atomic():
                failed = ConnectorInstallation.objects.select_for_update(no_key=True).get(pk=installation_id)
                do_record_poll_failure(failed, message, now)
            return 0
        for rejected in result.rejected:
            log.warning("installation %s: record %s rejected: %s", installation_id, rejected.position,
                        rejected.reason)
        return report.received
    finally:
        _unlock(installation_id)


def pollable_installation_ids() -> list[int]:
    ids = []
    for pk, key in ConnectorInstallation.objects.filter(enabled=True).values_list("pk", "provider_key"):
        try:
            cls = get_provider_class(key)
        except ConnectorError:
            continue
        if Capability.POLL in cls.capabilities:
            ids.append(pk)
    return ids


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
