"""The send job and the sweeper. A reply is sent exactly once, or visibly not:

1. In its own transaction the job claims the reply (queued → sending, stamped) and commits.
2. It calls the platform with the reply's idempotency key.
3. In a second transaction it records sent (with the platform's id) or failed.

A failure that may pass (network, 5xx) can come after the platform published: a provider whose platform drops
repeated sends (``Provider.idempotent_replies``) is tried again with back-off; for any other the job looks
(``find_reply``) before trying again, and where the platform cannot say, shows *delivery unknown*. A platform
that asks us to wait (``RateLimited``) gets the reply back in the queue with a job at its time. A refusal
(``Refused`` and other ``ConnectorError``) fails the reply visibly, with the platform's reason.

A worker killed between 2 and 3 leaves the reply *sending*. Nothing sends it again blindly: once the lease has
passed, :func:`settle_reply` asks the platform whether the reply is there (``Provider.find_reply``). Found: it
is recorded as sent. Certainly not there: back to the queue. The platform cannot tell: *delivery unknown*, which
the case shows with the choices "it was posted", "send again" and "discard", and which is never re-sent by itself.

Two periodic jobs make sure nothing waits for ever: :func:`sweep_replies` settles replies left *sending* past the
lease and re-defers *queued* ones whose job is gone, and :func:`retry_stalled_jobs` hands the jobs of workers
that stopped sending heartbeats (killed, lost their machine) back to the queue.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import close_old_connections, transaction
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Status

from caredesk.cases.actions import lock_case
from caredesk.connectors.base import (
    CannotTell,
    ConnectorError,
    NormalizedAuthor,
    OutboundReply,
    Provider,
    RateLimited,
    SentReply,
    Transient,
)
from caredesk.connectors.costs.ledger import budget_stop, do_record_usage
from caredesk.connectors.costs.prices import UsageEvent, reply_operation
from caredesk.connectors.rotation import Rotation
from caredesk.outbox.actions import (
    do_mark_reply_failed,
    do_mark_reply_sent,
    do_mark_reply_unknown,
    do_requeue_reply,
    do_start_sending,
)
from caredesk.outbox.models import Reply

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
SEND_TIMEOUT_SECONDS = 20


def lease() -> timedelta:
    """How long a reply may stay *sending* or *queued* before the sweeper settles it. Longer than a send's HTTP
    timeout, so a slow send is never taken for a dead one."""
    return timedelta(seconds=float(getattr(settings, "CAREDESK_REPLY_LEASE_SECONDS", 120)))


class TransientSendError(Exception):
    pass


def _outbound(reply: Reply) -> OutboundReply:
    author = reply.in_reply_to.author
    return OutboundReply(
        idempotency_key=reply.idempotency_key,
        text=reply.text,
        in_reply_to_external_id=reply.in_reply_to.external_id,
        in_reply_to_author=NormalizedAuthor(author.external_id, author.handle, author.name),
        is_direct=reply.is_direct,
        summoned=reply.in_reply_to.summoned or reply.in_reply_to.is_direct,
    )


def _load(reply_id: int) -> Reply:
    return Reply.objects.select_related("installation__brand", "in_reply_to__author").get(pk=reply_id)


def _lock(reply_id: int, case_id: int) -> Reply:
    """Lock the reply's case, then the reply row alone, in the caller's transaction: the order an agent's action
    takes (case, then reply). Recording an outcome writes to the case; locking the reply first, or locking the
    joined post, installation and brand rows with it (``FOR UPDATE`` without ``of``), deadlocked with an agent
    queueing a reply on the same case."""
    lock_case(case_id)
    return Reply.objects.select_for_update(of=("self",)).select_related("installation__brand", "in_reply_to").get(
        pk=reply_id
    )


def settle_reply(reply_id: int, http: httpx.Client | None = None, now: datetime | None = None) -> str:
    """Settle a reply left *sending* by an interrupted send; returns its state afterwards."""
    reply = _load(reply_id)
    if reply.state != Reply.State.SENDING:
        return reply.state
    found: SentReply | None = None
    verdict = ""
    rotation = Rotation()
    try:
        found = rotation.provider(reply.installation, http).find_reply(_outbound(reply), datetime.now(UTC))
    except CannotTell as exc:
        verdict = f"delivery unknown: a send was interrupted and {exc}; check the platform, then choose"
    except (ConnectorError, httpx.HTTPError) as exc:
        verdict = f"delivery unknown: a send was interrupted and asking the platform failed ({exc}); check it"
    finally:
        rotation.close()
    now = now or datetime.now(UTC)
    with transaction.atomic():
        reply = _lock(reply_id, reply.case_id)
        if reply.state != Reply.State.SENDING:
            return reply.state  # settled meanwhile
        if found is not None:
            do_mark_reply_sent(reply, found, now)
            log.info("reply %s was published before its send was interrupted", reply_id)
        elif verdict:
            do_mark_reply_unknown(reply, verdict, now)
            log.warning("reply %s: delivery unknown", reply_id)
        else:
            do_requeue_reply(reply, "an interrupted send never reached the platform; sending again", now)
            defer_send(reply.pk)
    return reply.state


def send_reply_now(reply_id: int, http: httpx.Client | None = None) -> str:
    """Run one send attempt; returns the reply's state afterwards. Used by the job and by tests."""
    with transaction.atomic():
        # The claim writes the reply row only: it locks that row alone, not the joined ones.
        reply = Reply.objects.select_for_update(of=("self",)).get(pk=reply_id)
        now = datetime.now(UTC)
        if reply.state == Reply.State.SENDING:
            if reply.state_since is None or now - reply.state_since >= lease():
                stale = True
            else:
                return reply.state  # another attempt is sending it right now
        else:
            stale = False
            if not do_start_sending(reply, now):
                return reply.state
    if stale:
        return settle_reply(reply_id, http)
    reply = _load(reply_id)
    rotation = Rotation()
    try:
        return _send(reply, rotation, http)
    finally:
        rotation.close()


def _send(reply: Reply, rotation: Rotation, http: httpx.Client | None) -> str:
    reply_id = reply.pk
    provider = None
    operation = reply_operation(reply.text, direct=reply.is_direct, summoned=reply.in_reply_to.summoned)
    try:
        stop = budget_stop(reply.installation, operation, datetime.now(UTC))
        if stop is not None:
            raise ConnectorError(stop)  # failed visibly, with the reason: an agent may send it again later
        provider = rotation.provider(reply.installation, http)
        try:
            sent = provider.send_reply(_outbound(reply), datetime.now(UTC))
        finally:
            rotation.store()  # renewed tokens first: whatever the outcome, they are the only ones that work now
    except RateLimited as exc:
        # Not sent: the platform asked us to wait. Back to the queue, with a job for when the wait is over.
        with transaction.atomic():
            reply = _lock(reply_id, reply.case_id)
            do_requeue_reply(reply, f"the platform asked to wait until {exc.retry_at:%H:%M:%S} UTC", datetime.now(UTC))
            defer_send(reply_id, at=exc.retry_at)
        return Reply.State.QUEUED
    except (httpx.TransportError, TimeoutError, Transient) as exc:
        return _after_transient_failure(reply, provider, exc)
    except ConnectorError as exc:
        with transaction.atomic():
            reply = _lock(reply_id, reply.case_id)
            do_mark_reply_failed(reply, str(exc), datetime.now(UTC))
        log.warning("reply %s refused by the platform", reply_id)
        return Reply.State.FAILED
    with transaction.atomic():
        reply = _lock(reply_id, reply.case_id)
        if reply.state != Reply.State.SENDING:
            return reply.state  # the sweeper settled it while the platform was slow
        do_mark_reply_sent(reply, sent, datetime.now(UTC))
        do_record_usage(reply.installation, [UsageEvent(operation, datetime.now(UTC), units=1)], datetime.now(UTC))
    log.info("reply %s sent as %s", reply_id, sent.external_id)
    return Reply.State.SENT


def _after_transient_failure(reply: Reply, provider: Provider | None, exc: Exception) -> str:  # type: ignore[type-arg]
    """A send failed in a way that may pass (network, 5xx). The request may still have reached the platform: a
    provider whose platform drops repeated sends (an idempotency key, a deterministic record key) simply tries
    again; for any other, look first, and where the platform cannot say, let an agent decide."""
    found: SentReply | None = None
    unknown = ""
    if provider is not None and not provider.idempotent_replies:
        try:
            found = provider.find_reply(_outbound(reply), datetime.now(UTC))
        except CannotTell as cannot:
            unknown = f"delivery unknown: the send failed midway ({exc}) and {cannot}; check the platform, then choose"
        except (ConnectorError, httpx.HTTPError) as failed:
            unknown = f"delivery unknown: the send failed midway ({exc}) and asking the platform failed ({failed})"
    now = datetime.now(UTC)
    with transaction.atomic():
        locked = _lock(reply.pk, reply.case_id)
        if locked.state != Reply.State.SENDING:
            return locked.state  # the sweeper settled it meanwhile
        if found is not None:
            do_mark_reply_sent(locked, found, now)
            return Reply.State.SENT
        if unknown:
            do_mark_reply_unknown(locked, unknown, now)
            return Reply.State.UNKNOWN
        if locked.attempts >= MAX_ATTEMPTS:
            do_mark_reply_failed(locked, f"gave up after {locked.attempts} attempts: {exc}", now)
            return Reply.State.FAILED
        do_requeue_reply(locked, f"attempt {locked.attempts} failed: {exc}", now)
    raise TransientSendError(str(exc)) from exc


@app.task(
    name="outbox.send_reply",
    queue="outbox",
    retry=RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2, retry_exceptions={TransientSendError}),
)
def send_reply(reply_id: int) -> None:
    close_old_connections()
    try:
        with httpx.Client(timeout=SEND_TIMEOUT_SECONDS) as http:
            send_reply_now(reply_id, http)
    finally:
        close_old_connections()


def defer_send(reply_id: int, at: datetime | None = None) -> bool:
    """Defer the send job of a queued reply (to run at ``at``, or now) unless one is already waiting; in the
    caller's transaction (the transactional outbox: the reply and its job commit together or not at all)."""
    try:
        with transaction.atomic():  # a savepoint: a refused insert must not abort the caller's transaction
            send_reply.configure(queueing_lock=f"reply:{reply_id}", schedule_at=at).defer(reply_id=reply_id)
        return True
    except AlreadyEnqueued:
        return False


def sweep_replies_now(now: datetime, http: httpx.Client | None = None) -> dict[str, int]:
    """Settle replies *sending* past the lease; re-defer *queued* ones past the lease whose job is gone."""
    cutoff = now - lease()
    settled: dict[str, int] = {}
    stale_sending = Reply.objects.filter(state=Reply.State.SENDING, state_since__lt=cutoff).values_list("pk", flat=True)
    for reply_id in list(stale_sending):
        state = settle_reply(reply_id, http, now)
        settled[state] = settled.get(state, 0) + 1
    stale_queued = Reply.objects.filter(state=Reply.State.QUEUED, state_since__lt=cutoff).values_list("pk", flat=True)
    redeferred = 0
    for reply_id in list(stale_queued):
        with transaction.atomic():
            if defer_send(reply_id):
                redeferred += 1
    if redeferred:
        log.warning("re-deferred %s queued replies whose send job was gone", redeferred)
    settled["redeferred"] = redeferred
    return settled


@app.periodic(cron="* * * * *", periodic_id="sweep-replies")
@app.task(name="outbox.sweep_replies", queue="outbox", queueing_lock="outbox.sweep_replies", pass_context=False)
def sweep_replies(timestamp: int) -> None:
    close_old_connections()
    try:
        with httpx.Client(timeout=SEND_TIMEOUT_SECONDS) as http:
            sweep_replies_now(datetime.now(UTC), http)
    finally:
        close_old_connections()


async def retry_stalled(job_manager: Any, seconds_since_heartbeat: float = 30) -> int:
    """Hand the jobs of workers that stopped sending heartbeats back to the queue; returns how many went back."""
    stalled = list(await job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat))
    retried = 0
    for job in stalled:
        try:
            await job_manager.retry_job(job)
            retried += 1
        except UniqueViolation:
            # A job with the same queueing lock already waits (the sweeper queued the reply again, or the next
            # poll was deferred, while this job's worker was dead): it does this one's work, and procrastinate
            # refuses a second waiting job for one lock, so this one ends instead of failing the whole retry.
            await job_manager.finish_job(job, Status.ABORTED, delete_job=False)
            log.warning("ended stalled job %s: a job for %s already waits", job.id, job.queueing_lock)
    if retried:
        log.warning("retried %s jobs of workers that stopped", retried)
    return retried


@app.periodic(cron="* * * * *", periodic_id="retry-stalled-jobs")
@app.task(name="jobs.retry_stalled", queue="housekeeping", queueing_lock="jobs.retry_stalled", pass_context=True)
async def retry_stalled_jobs(context: Any, timestamp: int) -> None:
    await retry_stalled(context.app.job_manager)
