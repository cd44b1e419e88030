"""``caredesk listen``: hold the stream connection of every enabled installation whose provider streams, each in
exactly one process at a time, across any number of processes and machines.

**Who holds what: a lease row, not an advisory lock.** Each installation's stream is held under a lease
(:mod:`caredesk.connectors.listen.lease`: holder id, ``expires_at`` in database time) that the holder renews every
``lease_seconds / 4``; a process killed with SIGKILL stops renewing and any other ``caredesk listen`` takes the
installation over once ``lease_seconds`` have passed (10 s by default). A session advisory lock would be released
sooner on a clean TCP reset, but it is invisible to anyone who wants to know *who* holds a stream and *when it was
last alive* (the health page), it needs one dedicated server session per process that a connection pooler in
transaction mode breaks, and a holder whose connection survives while the process hangs would keep it for ever.
The lease is also a fence: a batch is stored (``INSERT … WHERE EXISTS`` our live lease) and processed (``FOR SHARE``
of that lease row, so a takeover waits for the transaction) only while this process holds it, so a process that
was paused past its lease and wakes up cannot write anything after its successor started.

**Per installation** (:class:`InstallationStream`, one thread each, with its own database connection and its own
event loop for the provider's async iterator):

1. process any stream payloads left *pending* (a holder killed between storing and processing);
2. connect from the saved cursor (``Provider.stream``);
3. for each batch: store it raw, committed (one insert), then process it (posts, changes, credentials and cursor
   in one short transaction; :mod:`caredesk.connectors.processing`). A processing fault marks the payload failed
   with its error and the stream goes on; ``caredesk connector retry`` processes it later;
4. between batches (and every second while idle) check the installation: disabled, or its ``config_version``
   changed (an admin edited the listening rules or credentials): close the connection and reconnect with a
   provider built from the new config, without a restart;
5. on a dropped connection or :class:`Transient` error, reconnect after a jittered exponential back-off (from 0.5 s
   up to 60 s, reset once a connection delivered something); on :class:`RateLimited`, not before its ``retry_at``;
   on :class:`AuthRevoked`, mark the installation failing with the reason and stop until an admin changes the
   credentials;
6. follow the listening ladder (:mod:`caredesk.connectors.rungs`): only installations whose ladder wants a stream
   are taken (none while a webhook works); a stream the platform :class:`Refused`, or one that failed
   ``ladder.FAILURES_TO_FALL`` connections in a row without a batch where polling is allowed, fails the stream rung
   for a while and is let go (the worker polls meanwhile), to be taken again once that while has passed;
7. obey the monthly budget: before connecting and after every batch, while reads are stopped
   (:func:`~caredesk.connectors.costs.ledger.budget_stop`) the connection is closed (a paid stream bills every post
   it delivers) and the lease kept; every ``BUDGET_CHECK_SECONDS`` it looks again and connects by itself once the
   budget allows (a new month, a raised budget).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
from django.db import DatabaseError, close_old_connections, connection, transaction

from caredesk.connectors.actions import (
    do_record_auth_revoked,
    do_record_failure,
    do_record_rung_failure,
    do_record_rung_ok,
    do_record_rung_refused,
    lock_installation,
)
from caredesk.connectors.base import AuthRevoked, Capability, ConnectorError, FetchResult, RateLimited, Refused, Rung
from caredesk.connectors.batches import dump_batch
from caredesk.connectors.costs.ledger import budget_stop, do_record_budget_stop, price_table
from caredesk.connectors.costs.prices import Operation
from caredesk.connectors.ladder import OK_GRANULARITY
from caredesk.connectors.listen import lease
from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.connectors.processing import LeaseLost, pending_payload_ids, process_payload, store_payload
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.rungs import allowed_rungs, should_stream
from caredesk.connectors.runtime import get_provider

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 60.0
# How often an idle stream looks for a changed config or a stop.
CHECK_SECONDS = 1.0
# How often a stream stopped at its budget looks whether it may read again (a new month, a raised budget).
BUDGET_CHECK_SECONDS = 5.0


def backoff(attempt: int, *, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """Seconds to wait before reconnect number ``attempt`` (1, 2, ...): exponential, capped, with jitter so that
    many listeners cut off together do not all come back in the same instant."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempt - 1))  # noqa: S311


def streamable_installation_ids() -> list[int]:
    """Enabled installations whose provider streams, whose credentials were not refused, and whose ladder wants a
    stream now: streaming allowed and not failed, and no webhook working already (no need to stream)."""
    ids = []
    now = datetime.now(UTC)
    for installation in ConnectorInstallation.objects.select_related("brand").filter(enabled=True,
                                                                                    auth_revoked_at=None):
        try:
            cls = get_provider_class(installation.provider_key)
        except ConnectorError:
            continue
        if Capability.STREAM in cls.capabilities and hasattr(cls, "stream") and should_stream(installation, now):
            ids.append(installation.pk)
    return ids


def _message(exc: BaseException) -> str:
    if isinstance(exc, ConnectorError | httpx.HTTPError):
        return str(exc) or type(exc).__name__
    return f"unexpected error: {type(exc).__name__}: {exc}"


class _Stop(Exception):
    """The stream must end: stopping, lease lost, or the installation changed."""


class _BudgetReached(_Stop):
    """Reads are stopped (the monthly budget): close the connection before the platform sends (and bills) more."""


class InstallationStream(threading.Thread):
    """One installation's stream, held while ``lost`` and ``stopping`` are unset."""

    def __init__(self, installation_id: int, holder: str, stopping: threading.Event,
                 read_timeout: float = 90.0) -> None:
        super().__init__(name=f"listen-{installation_id}", daemon=True)
        self.installation_id = installation_id
        self.holder = holder
        self.stopping = stopping
        self.lost = threading.Event()
        # Set by the listener once the ladder no longer wants this stream (a webhook works now): let it go.
        self.released = threading.Event()
        self.budget_check_seconds = BUDGET_CHECK_SECONDS
        self.worked_at: datetime | None = None  # when the stream rung's success was last written
        self.read_timeout = read_timeout
        self.reason = ""
        self.delivered = 0  # batches the current connection delivered

    def _ended(self) -> bool:
        return self.stopping.is_set() or self.lost.is_set() or self.released.is_set()

    def run(self) -> None:
        try:
            self._run()
        except LeaseLost:
            self.reason = "lease lost"
        except Exception:
            log.exception("installation %s: the stream stopped", self.installation_id)
            self.reason = "crashed"
        finally:
            connection.close()

    def _installation(self) -> ConnectorInstallation | None:
        close_old_connections()
        return (
            ConnectorInstallation.objects.select_related("brand")
            .filter(pk=self.installation_id, enabled=True, auth_revoked_at=None)
            .first()
        )

    def _run(self) -> None:
        attempt = 0
        while not self._ended():
            installation = self._installation()
            if installation is None:
                self.reason = "disabled"
                return
            now = datetime.now(UTC)
            if installation.retry_at and installation.retry_at > now:
                self._sleep((installation.retry_at - now).total_seconds(), installation.config_version)
                continue
            for payload_id in pending_payload_ids(self.installation_id, RawPayload.Source.STREAM):
                process_payload(payload_id, datetime.now(UTC), holder=self.holder)
            if self._over_budget(installation):
                # Stay holding the lease (the rung is still the stream), and look again now and then: a new month
                # or a raised budget lets it connect again by itself.
                self._sleep(self.budget_check_seconds, installation.config_version)
                continue
            self.delivered = 0
            try:
                self._consume(installation)
                # The platform closed the connection: come back soon, later each time it closes without a word.
                attempt = 0 if self.delivered else attempt + 1
                if not self._ended():
                    self._sleep(backoff(max(attempt, 1)), installation.config_version)
            except _Stop:
                continue
            except Refused as exc:  # not allowed (e.g. an app not enrolled): the next rung down, for a while
                log.warning("installation %s: stream refused: %s", self.installation_id, exc)
                self._fail(_message(exc), rung_refused=True)
                self.reason = "refused by the platform"
                return
            except RateLimited as exc:
                log.warning("installation %s: rate limited until %s", self.installation_id, exc.retry_at)
                self._fail(_message(exc), retry_at=exc.retry_at)
            except AuthRevoked as exc:
                log.warning("installation %s: credentials refused: %s", self.installation_id, exc)
                self._fail(_message(exc), revoked=True)
                self.reason = "credentials refused"
                return
            except LeaseLost:
                raise
            except Exception as exc:  # Transient, a dropped connection, a provider bug: back off and reconnect
                # A connection that delivered something before it broke starts the back-off again from the start.
                attempt = 1 if self.delivered else attempt + 1
                delay = backoff(attempt)
                log.warning("installation %s: stream failed (%s); reconnecting in %.1f s", self.installation_id,
                            _message(exc), delay, exc_info=not isinstance(exc, ConnectorError | httpx.HTTPError))
                if self._fail(_message(exc), retry_at=datetime.now(UTC) + timedelta(seconds=delay),
                              counted=not self.delivered):
                    self.reason = "failing: polled meanwhile"
                    return

    def _fail(self, message: str, *, retry_at: datetime | None = None, revoked: bool = False,
              rung_refused: bool = False, counted: bool = False) -> bool:
        """Record a failure; True when the stream rung fell with it (a lower rung listens meanwhile)."""
        now = datetime.now(UTC)
        self.worked_at = None  # the next batch writes that the stream works again
        with transaction.atomic():
            installation = lock_installation(self.installation_id)
            if revoked:
                do_record_auth_revoked(installation, message, now)
                return False
            do_record_failure(installation, message, now, retry_at=retry_at)
            if rung_refused:
                do_record_rung_refused(installation, Rung.STREAM, message, now)
                return True
            if counted:  # a connection that failed before it delivered anything
                return do_record_rung_failure(installation, Rung.STREAM, message, now, allowed_rungs(installation))
            return False

    def _over_budget(self, installation: ConnectorInstallation) -> bool:
        """Whether reads are stopped for the budget now; recorded (health) where the reason is new."""
        now = datetime.now(UTC)
        try:
            if price_table(installation) is None:
                return False  # a free platform: nothing to check, no query
            # The budget as it is now (an admin may have lowered it while this connection was open).
            installation.refresh_from_db(fields=["monthly_budget", "reply_reserve", "price_overrides"])
            stop = budget_stop(installation, Operation.POST_READ, now)
        except ConnectorError as exc:  # its own prices cannot be used: reads that cannot be priced do not start
            stop = str(exc)
        if stop is None:
            return False
        with transaction.atomic():
            locked = lock_installation(self.installation_id)
            if locked.last_error != stop:
                log.warning("installation %s: %s", self.installation_id, stop)
                do_record_budget_stop(locked, stop, now, polled=False)
        return True

    def _sleep(self, seconds: float, version: int) -> None:
        """Wait, but end early on a stop, a lost lease, or a changed installation (new credentials lift a wait)."""
        deadline = datetime.now(UTC) + timedelta(seconds=seconds)
        while not self._ended():
            left = (deadline - datetime.now(UTC)).total_seconds()
            if left <= 0:
                return
            if self.stopping.wait(min(CHECK_SECONDS, left)) or self._changed(version):
                return

    def _changed(self, version: int) -> bool:
        close_old_connections()
        row = ConnectorInstallation.objects.filter(pk=self.installation_id).values_list(
            "enabled", "auth_revoked_at", "config_version").first()
        return row is None or not row[0] or row[1] is not None or row[2] != version

    def _consume(self, installation: ConnectorInstallation) -> None:
        """One connection, until the platform ends it; raises what the provider raised, or :class:`_Stop`.
        Counts the batches it delivered in ``self.delivered``."""
        provider = get_provider(installation)
        version = installation.config_version
        loop = asyncio.new_event_loop()
        http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=self.read_timeout))
        batches: AsyncIterator[FetchResult] = provider.stream(dict(installation.cursor), http).__aiter__()  # type: ignore[attr-defined]
        pending: asyncio.Task[FetchResult | None] | None = None
        checked = loop.time()
        try:
            while True:
                if pending is None:
                    pending = loop.create_task(_next(batches))
                # The loop runs only while waiting for the platform; database work happens between, in this
                # thread, with no loop running (Django's ORM refuses to run inside one).
                loop.run_until_complete(asyncio.wait({pending}, timeout=CHECK_SECONDS))
                if pending.done():
                    batch = pending.result()  # raises the provider's error
                    pending = None
                    if batch is None:
                        return
                    self._store(batch)
                    self.delivered += 1
                    # Between batches: the next one would be billed, so none comes once the budget is spent.
                    if self._over_budget(installation):
                        raise _BudgetReached
                if self._ended():
                    raise _Stop
                if loop.time() - checked >= CHECK_SECONDS:
                    checked = loop.time()
                    if self._changed(version):
                        log.info("installation %s changed: reconnecting", self.installation_id)
                        raise _Stop
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                loop.run_until_complete(asyncio.wait({pending}))
            loop.run_until_complete(_close(batches, http))
            loop.close()

    def _store(self, batch: FetchResult) -> None:
        payload_id = store_payload(self.installation_id, RawPayload.Source.STREAM, dump_batch(batch),
                                   datetime.now(UTC), holder=self.holder)
        for earlier in pending_payload_ids(self.installation_id, RawPayload.Source.STREAM):
            if earlier != payload_id:
                process_payload(earlier, datetime.now(UTC), holder=self.holder)
        process_payload(payload_id, datetime.now(UTC), holder=self.holder)
        now = datetime.now(UTC)
        if self.worked_at is None or now - self.worked_at >= OK_GRANULARITY:
            with transaction.atomic():
                do_record_rung_ok(lock_installation(self.installation_id), Rung.STREAM, now)
            self.worked_at = now


async def _next(batches: AsyncIterator[FetchResult]) -> FetchResult | None:
    try:
        return await batches.__anext__()
    except StopAsyncIteration:
        return None


async def _close(batches: AsyncIterator[FetchResult], http: httpx.AsyncClient) -> None:
    aclose = getattr(batches, "aclose", None)
    try:
        if aclose is not None:
            await aclose()
    except Exception:  # a provider that fails while closing must not keep the connection open
        log.debug("closing a stream failed", exc_info=True)
    finally:
        await http.aclose()


class Listener:
    """Takes the leases of streamable installations, runs one :class:`InstallationStream` per lease held, and
    renews the leases until stopped."""

    def __init__(self, *, lease_seconds: float = 10.0, scan_seconds: float = 2.0, holder: str | None = None,
                 read_timeout: float = 90.0) -> None:
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = lease_seconds / 4
        self.scan_seconds = scan_seconds
        self.read_timeout = read_timeout
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self.streams: dict[int, InstallationStream] = {}

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        log.info("listening as %s", self.holder)
        next_scan = 0.0
        try:
            while not self.stopping.is_set():
                try:
                    close_old_connections()
                    self._heartbeat()
                    self._reap()
                    now = time.monotonic()
                    if now >= next_scan:
                        next_scan = now + self.scan_seconds
                        self._scan()
                except DatabaseError as exc:
                    # The database is away: our leases lapse, and so do everyone's; keep trying to come back.
                    log.warning("listener: database error (%s); retrying", str(exc).strip().splitlines()[0])
                    connection.close()
                self.stopping.wait(min(self.heartbeat_seconds, self.scan_seconds))
        finally:
            self.stopping.set()
            for stream in self.streams.values():
                stream.join(timeout=10)
            for installation_id in list(self.streams):
                try:
                    lease.release(installation_id, self.holder)
                except Exception:  # the database is gone: the lease simply expires
                    log.warning("could not release the lease of installation %s", installation_id)
            connection.close()

    def _heartbeat(self) -> None:
        held = set(self.streams)
        kept = lease.renew(held, self.holder, self.lease_seconds)
        for installation_id in held - kept:
            log.warning("installation %s: lease lost, stopping its stream", installation_id)
            self.streams[installation_id].lost.set()

    def _reap(self) -> None:
        for installation_id, stream in list(self.streams.items()):
            if not stream.is_alive():
                del self.streams[installation_id]
                if not stream.lost.is_set():
                    lease.release(installation_id, self.holder)
                log.info("installation %s: stream ended (%s)", installation_id, stream.reason or "stopped")

    def _scan(self) -> None:
        wanted = streamable_installation_ids()
        for installation_id, stream in self.streams.items():
            if installation_id not in wanted and not stream.released.is_set():
                # A webhook works now, or the stream failed: a higher or lower rung listens instead.
                log.info("installation %s: the ladder no longer uses its stream; letting it go", installation_id)
                stream.released.set()
        for installation_id in wanted:
            if installation_id in self.streams or self.stopping.is_set():
                continue
            if lease.acquire(installation_id, self.holder, self.lease_seconds):
                log.info("installation %s: lease taken, connecting", installation_id)
                stream = InstallationStream(installation_id, self.holder, self.stopping, self.read_timeout)
                self.streams[installation_id] = stream
                stream.start()

