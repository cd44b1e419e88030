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
from caredesk.connectors.base import Capability, ConnectorError, ReplyRules, SentReply
from caredesk.connectors.runtime import brand_account, get_provider
from caredesk.outbox.models import Reply

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ReplyError(CaseActionError):
    """The reply cannot be queued as written; the message tells the agent why."""


class ReplyConflictError(ReplyError, CaseConflictError):
    """The reply is sound but collides with one already stored (its idempotency key is another case's)."""


def platform_of(post: Post) -> str:
    return post.author.platform


def check_can_reply(post: Post) -> None:
    """Refuse before queueing a reply that the post's connector cannot send at all (a file import), or to a post
    deleted on the platform."""
    if post.deleted_at is not None:
        raise ReplyError("that post was deleted on the platform: there is nothing to answer there any more")
    from caredesk.connectors.registry import get_provider_class

    try:
        cls = get_provider_class(post.installation.provider_key)
    except ConnectorError as exc:
        raise ReplyError(str(exc)) from None
    if Capability.REPLY not in cls.capabilities:
        raise ReplyError(
            f"this post came in through {cls.display_name}, which cannot send replies: answer the customer on "
            f"{platform_of(post)} itself"
        )


def reply_rules_for(post: Post) -> ReplyRules:
    """What the platform of ``post`` accepts as a reply, as its installation's provider states it."""
    try:
        return get_provider(post.installation).reply_rules()
    except ConnectorError as exc:
        raise ReplyError(str(exc)) from None


def check_reply_text(post: Post, text: str, *, is_direct: bool = False) -> str:
    """The reply text, stripped, if the platform accepts it as a reply to ``post``; ReplyError says why not."""
    text = text.strip()
    if not text:
        raise ReplyError("the reply is empty")
    problem = reply_rules_for(post).problem(text, direct=is_direct, summoned=post.summoned)
    if problem is not None:
        raise ReplyError(f"{platform_of(post)}: {problem}")
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
    check_can_reply(in_reply_to)
    direct = in_reply_to.is_direct if is_direct is None else is_direct
    text = check_reply_text(in_reply_to, text, is_direct=direct)
    reply = Reply.objects.create(
        case=case,
        in_reply_to=in_reply_to,
        installation=in_reply_to.installation,
        author=actor,
        text=text,
        is_direct=direct,
        idempotency_key=key,
        state=Reply.State.QUEUED,
        created_at=now,
        state_since=now,
    )
    do_record_reply_event(case, Activity.Kind.REPLY_QUEUED, actor, now, reply_id=reply.pk)
    from caredesk.outbox.tasks import defer_send  # the task module imports this one

    defer_send(reply.pk)
    return reply


def do_start_sending(reply: Reply, now: datetime) -> bool:
    """Claim a queued reply for sending. Precondition: the reply row is locked. Returns False if it is not queued
    (already sent, failed, or claimed by a send that has not reported back)."""
    if reply.state != Reply.State.QUEUED:
        return False
    reply.state = Reply.State.SENDING
    reply.state_since = now
    reply.attempts += 1
    reply.save(update_fields=["state", "state_since", "attempts"])
    return True


def do_requeue_reply(reply: Reply, error: str, now: datetime) -> None:
    """Back to the queue: after a transient failure (network), or when the platform says an interrupted send
    never arrived. Precondition: the reply row is locked."""
    reply.state = Reply.State.QUEUED
    reply.state_since = now
    reply.error = error
    reply.save(update_fields=["state", "state_since", "error"])


def do_mark_reply_sent(reply: Reply, sent: SentReply, now: datetime) -> Reply:
    """The platform published the reply. Precondition: the reply row is locked."""
    return _mark_sent(reply, sent, now, None)


def _mark_sent(reply: Reply, sent: SentReply, now: datetime, actor: User | None, confirmed: bool = False) -> Reply:
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
    reply.state_since = now
    reply.external_id = sent.external_id
    reply.sent_at = now
    reply.post = post
    reply.error = ""
    reply.save(update_fields=["state", "state_since", "external_id", "sent_at", "post", "error"])
    extra = {"confirmed": True} if confirmed else {}
    do_record_reply_event(
        case, Activity.Kind.REPLY_SENT, actor, now, reply_id=reply.pk, post_id=post.pk, status=case.status, **extra
    )
    return reply


def do_mark_reply_failed(reply: Reply, error: str, now: datetime) -> Reply:
    reply.state = Reply.State.FAILED
    reply.state_since = now
    reply.error = error[:2000]
    reply.save(update_fields=["state", "state_since", "error"])
    do_record_reply_event(reply.case, Activity.Kind.REPLY_FAILED, None, now, reply_id=reply.pk, error=reply.error)
    return reply


def do_retry_reply(reply: Reply, actor: User, now: datetime) -> Reply:
    """An agent asks to send a failed reply again: a new attempt under the same idempotency key."""
    if reply.state != Reply.State.FAILED:
        raise ReplyError("only a failed reply can be retried")
    reply.state = Reply.State.QUEUED
    reply.state_since = now
    reply.save(update_fields=["state", "state_since"])
    do_record_reply_event(reply.case, Activity.Kind.REPLY_QUEUED, actor, now, reply_id=reply.pk, retry=True)
    from caredesk.outbox.tasks import defer_send

    defer_send(reply.pk)
    return reply


def do_mark_reply_unknown(reply: Reply, reason: str, now: datetime) -> Reply:
    """A send was interrupted and the platform cannot say whether the reply went out: an agent must decide.
    Precondition: the reply row is locked."""
    reply.state = Reply.State.UNKNOWN
    reply.state_since = now
    reply.error = reason[:2000]
    reply.save(update_fields=["state", "state_since", "error"])
    do_record_reply_event(reply.case, Activity.Kind.REPLY_UNKNOWN, None, now, reply_id=reply.pk, error=reply.error)
    return reply


def _check_unknown(reply: Reply) -> None:
    if reply.state != Reply.State.UNKNOWN:
        raise ReplyError(f"only a reply whose delivery is unknown can be settled; this one is {reply.state}")


def do_confirm_reply_posted(reply: Reply, actor: User, now: datetime, external_id: str = "") -> Reply:
    """An agent saw the reply on the platform. With its id the post is recorded (so the platform's copy is
    recognised as ours); without, the reply is marked sent alone."""
    _check_unknown(reply)
    external_id = external_id.strip()
    if len(external_id) > 200:
        raise ReplyError("a post id is at most 200 characters")
    if external_id:
        return _mark_sent(reply, SentReply(external_id=external_id, created_at=now), now, actor, confirmed=True)
    reply.state = Reply.State.SENT
    reply.state_since = now
    reply.sent_at = now
    reply.error = ""
    reply.save(update_fields=["state", "state_since", "sent_at", "error"])
    case = Case.objects.select_for_update().get(pk=reply.case_id)
    do_record_reply_event(case, Activity.Kind.REPLY_SENT, actor, now, reply_id=reply.pk, post_id=None,
                          confirmed=True, status=case.status)
    return reply


def do_send_reply_again(reply: Reply, actor: User, now: datetime) -> Reply:
    """The agent checked the platform and the reply is not there: send it again, under the same idempotency key
    (a platform that honours it cannot post twice)."""
    _check_unknown(reply)
    reply.state = Reply.State.QUEUED
    reply.state_since = now
    reply.save(update_fields=["state", "state_since"])
    do_record_reply_event(reply.case, Activity.Kind.REPLY_QUEUED, actor, now, reply_id=reply.pk, retry=True)
    from caredesk.outbox.tasks import defer_send

    defer_send(reply.pk)
    return reply


def do_discard_reply(reply: Reply, actor: User, now: datetime) -> Reply:
    """Give up on a reply whose delivery is unknown or that failed: it stays on the timeline, crossed out."""
    if reply.state not in (Reply.State.UNKNOWN, Reply.State.FAILED):
        raise ReplyError(f"only a failed reply or one whose delivery is unknown can be discarded, not {reply.state}")
    reply.state = Reply.State.DISCARDED
    reply.state_since = now
    reply.save(update_fields=["state", "state_since"])
    do_record_reply_event(reply.case, Activity.Kind.REPLY_DISCARDED, actor, now, reply_id=reply.pk)
    return reply
