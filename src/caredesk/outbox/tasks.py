"""The send job. Sent exactly once, or visibly failed:

1. In its own transaction the job claims the reply (queued → sending) and commits.
2. It calls the platform with the reply's idempotency key.
3. In a second transaction it records sent (with the platform's id) or failed.

A crash between 2 and 3 leaves the reply in *sending*. Resending then could post twice, so the next run marks it
failed with "delivery unknown" for an agent to check, instead of guessing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from django.db import close_old_connections, transaction
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from caredesk.connectors.base import ConnectorError, NormalizedAuthor, OutboundReply
from caredesk.connectors.runtime import get_provider
from caredesk.outbox.actions import (
    do_mark_reply_failed,
    do_mark_reply_sent,
    do_requeue_reply,
    do_start_sending,
)
from caredesk.outbox.models import Reply

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


class TransientSendError(Exception):
    pass


def send_reply_now(reply_id: int, http: httpx.Client | None = None) -> str:
    """Run one send attempt; returns the reply's state afterwards. Used by the job and by tests."""
    with transaction.atomic():
        reply = Reply.objects.select_for_update().select_related("installation__brand").get(pk=reply_id)
        if reply.state == Reply.State.SENDING:
            do_mark_reply_failed(
                reply, "delivery unknown: a send was interrupted; check the platform before retrying",
                datetime.now(UTC),
            )
            return reply.state
        if not do_start_sending(reply):
            return reply.state
    reply = Reply.objects.select_related("installation__brand", "in_reply_to__author").get(pk=reply_id)
    author = reply.in_reply_to.author
    outbound = OutboundReply(
        idempotency_key=reply.idempotency_key,
        text=reply.text,
        in_reply_to_external_id=reply.in_reply_to.external_id,
        in_reply_to_author=NormalizedAuthor(author.external_id, author.handle, author.name),
        is_direct=reply.is_direct,
    )
    try:
        provider = get_provider(reply.installation, http)
        sent = provider.send_reply(outbound, datetime.now(UTC))
    except ConnectorError as exc:
        with transaction.atomic():
            reply = Reply.objects.select_for_update().get(pk=reply_id)
            do_mark_reply_failed(reply, str(exc), datetime.now(UTC))
        log.warning("reply %s refused by the platform", reply_id)
        return Reply.State.FAILED
    except (httpx.TransportError, TimeoutError) as exc:
        with transaction.atomic():
            reply = Reply.objects.select_for_update().get(pk=reply_id)
            if reply.attempts >= MAX_ATTEMPTS:
                do_mark_reply_failed(reply, f"gave up after {reply.attempts} attempts: {exc}", datetime.now(UTC))
                return Reply.State.FAILED
            do_requeue_reply(reply, f"attempt {reply.attempts} failed: {exc}")
        raise TransientSendError(str(exc)) from exc
    with transaction.atomic():
        reply = Reply.objects.select_for_update().select_related("installation__brand", "in_reply_to").get(
            pk=reply_id
        )
        do_mark_reply_sent(reply, sent, datetime.now(UTC))
    log.info("reply %s sent as %s", reply_id, sent.external_id)
    return Reply.State.SENT


@app.task(
    name="outbox.send_reply",
    queue="outbox",
    retry=RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2, retry_exceptions={TransientSendError}),
)
def send_reply(reply_id: int) -> None:
    close_old_connections()
    try:
        send_reply_now(reply_id)
    finally:
        close_old_connections()
