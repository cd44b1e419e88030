"""Writes for outbound replies. A reply is queued in the caller's transaction together with its send job, so
either both exist or neither does (a transactional outbox)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from caredesk.cases.actions import (
    CaseActionError,
    CaseConflictError,
    do_ensure_author,
    do_record_outbound_post,
    do_record_reply_event,
)
from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.base import SentReply
from caredesk.connectors.runtime import brand_account
from caredesk.outbox.length import check_length
from caredesk.outbox.models import Reply

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ReplyError(CaseActionError):
    """The reply cannot be queued as written; the message tells the agent why."""


class ReplyConflictError(ReplyError, CaseConflictError):
    """The reply is sound but collides with one already stored (its idempotency key is another case's)."""


def platform_of(post: Post) -> str:
    return post.author.platform


def check_reply_text(post: Post, text: str) -> str:
    text = text.strip()
    if not text:
        raise ReplyError("the reply is empty")
    limit = post.installation.config.get("max_characters")
    result = check_length(platform_of(post), text, int(limit) if limit else None)
    if not result.ok:
        raise ReplyError(
            f"the reply is {result.length} {result.unit} long; {platform_of(post)} allows {result.limit}"
        )
    return text


def do_queue_reply(
    case: Case,
    in_reply_to: Post,
    text: str,
    actor: User,
    now: datetime,
    *,
    idempotency_key: str | None = None,
    is_direct: bool | None = None,
) -> Reply:
    """Queue a reply and its send job. With a key already used, returns the existing reply (no second send)."""
    if in_reply_to.case_id != case.pk:
        raise ReplyError("that post belongs to another case")
    key = idempotency_key or uuid.uuid4().hex
    if len(key) > 80:
        raise ReplyError("idempotency key longer than 80 characters")
    existing = Reply.objects.filter(idempotency_key=key).first()
    if existing is not None:
        if existing.case_id != case.pk:
            raise ReplyConflictError("that idempotency key was used for another case")
        return existing
    text = check_reply_text(in_reply_to, text)
    reply = Reply.objects.create(
        case=case,
        in_reply_to=in_reply_to,
        installation=in_reply_to.installation,
        author=actor,
        text=text,
        is_direct=in_reply_to.is_direct if is_direct is None else is_direct,
        idempotency_key=key,
        state=Reply.State.QUEUED,
        created_at=now,
    )
    do_record_reply_event(case, Activity.Kind.REPLY_QUEUED, actor, now, reply_id=reply.pk)
    from caredesk.outbox.tasks import send_reply  # the task module imports this one

    send_reply.defer(reply_id=reply.pk)
    return reply


def do_start_sending(reply: Reply) -> bool:
    """Claim a queued reply for sending. Precondition: the reply row is locked. Returns False if it is not queued
    (already sent, failed, or claimed by a send that never reported back)."""
    if reply.state != Reply.State.QUEUED:
        return False
    reply.state = Reply.State.SENDING
    reply.attempts += 1
    reply.save(update_fields=["state", "attempts"])
    return True


def do_requeue_reply(reply: Reply, error: str) -> None:
    """A transient failure (network): back to the queue for the job's retry."""
    reply.state = Reply.State.QUEUED
    reply.error = error
    reply.save(update_fields=["state", "error"])


def do_mark_reply_sent(reply: Reply, sent: SentReply, now: datetime) -> Reply:
    installation = reply.installation
    account_id, handle = brand_account(installation)
    author = do_ensure_author(
        installation.brand_id, platform_of(reply.in_reply_to), account_id, handle, installation.brand.name
    )
    case = Case.objects.select_for_update().get(pk=reply.case_id)
    post = do_record_outbound_post(
        case, installation, author, sent.external_id, reply.text, reply.in_reply_to, reply.is_direct,
        sent.created_at, now, actor=reply.author,
    )
    reply.state = Reply.State.SENT
    reply.external_id = sent.external_id
    reply.sent_at = now
    reply.post = post
    reply.error = ""
    reply.save(update_fields=["state", "external_id", "sent_at", "post", "error"])
    do_record_reply_event(
        case, Activity.Kind.REPLY_SENT, None, now, reply_id=reply.pk, post_id=post.pk, status=case.status
    )
    return reply


def do_mark_reply_failed(reply: Reply, error: str, now: datetime) -> Reply:
    reply.state = Reply.State.FAILED
    reply.error = error[:2000]
    reply.save(update_fields=["state", "error"])
    do_record_reply_event(reply.case, Activity.Kind.REPLY_FAILED, None, now, reply_id=reply.pk, error=reply.error)
    return reply


def do_retry_reply(reply: Reply, actor: User, now: datetime) -> Reply:
    """An agent asks to send a failed reply again: a new attempt under the same idempotency key."""
    if reply.state != Reply.State.FAILED:
        raise ReplyError("only a failed reply can be retried")
    reply.state = Reply.State.QUEUED
    reply.save(update_fields=["state"])
    do_record_reply_event(reply.case, Activity.Kind.REPLY_QUEUED, actor, now, reply_id=reply.pk, retry=True)
    from caredesk.outbox.tasks import send_reply

    send_reply.defer(reply_id=reply.pk)
    return reply
