"""A send that fails midway is never sent twice: a platform that drops repeated sends is simply tried again; for
any other the outbox looks before trying again, and where the platform cannot say, an agent decides. A platform
that asks us to wait gets its wait."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from django.db import transaction
from procrastinate.contrib.django.models import ProcrastinateJob

from caredesk.cases.models import Case
from caredesk.connectors.base import (
    CannotTell,
    Capability,
    OutboundReply,
    Provider,
    ProviderConfig,
    RateLimited,
    SentReply,
    Transient,
)
from caredesk.connectors.registry import register_provider, unregister_provider
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import TransientSendError, send_reply_now
from factories import ingest, make_brand, make_post, make_user

pytestmark = pytest.mark.django_db

# What the platform double has published, and how its next send fails: this is the platform's state, not ours.
PUBLISHED: dict[str, SentReply] = {}
BEHAVIOUR: dict[str, Any] = {}


class FlakyConfig(ProviderConfig):
    idempotent: bool = False
    can_look: bool = True


class FlakyPlatform(Provider[FlakyConfig]):
    """A platform double: publishes, then fails the response (the reply is out, the answer lost), or refuses to
    take the request at all, as BEHAVIOUR says."""

    key: ClassVar[str] = "flaky-test"
    display_name: ClassVar[str] = "Flaky test platform"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.REPLY})
    config_model: ClassVar[type[ProviderConfig]] = FlakyConfig

    @property
    def idempotent_replies(self) -> bool:  # type: ignore[override]
        return self.config.idempotent

    @property
    def platform(self) -> str:
        return "mastodon"

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        mode = BEHAVIOUR.get("mode", "ok")
        if mode == "rate-limited":
            raise RateLimited("slow down", retry_at=now + timedelta(minutes=5))
        if mode == "down":
            raise Transient("503 from the platform, nothing published")
        if reply.idempotency_key in PUBLISHED and self.config.idempotent:
            return PUBLISHED[reply.idempotency_key]
        sent = SentReply(external_id=f"s{len(PUBLISHED) + 1}", created_at=now)
        PUBLISHED.setdefault(reply.idempotency_key, sent)
        BEHAVIOUR["sends"] = BEHAVIOUR.get("sends", 0) + 1
        if mode == "lost-answer":
            raise Transient("connection reset after the request was sent")
        return sent

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        if not self.config.can_look:
            raise CannotTell("this platform cannot look a reply up")
        return PUBLISHED.get(reply.idempotency_key)


@pytest.fixture(autouse=True)
def platform() -> Iterator[None]:
    register_provider(FlakyPlatform)  # type: ignore[type-abstract]
    PUBLISHED.clear()
    BEHAVIOUR.clear()
    yield
    unregister_provider(FlakyPlatform.key)


def _reply(**config: Any) -> Reply:
    from caredesk.connectors.actions import do_create_installation

    installation = do_create_installation(make_brand(), "flaky-test", "flaky", config)
    ingest(installation, make_post("@nimbus my internet is down"))
    case = Case.objects.get()
    with transaction.atomic():
        return do_queue_reply(case, case.posts.get(), "Can I help?", make_user(), datetime.now(UTC))


def test_a_lost_answer_from_a_platform_that_does_not_dedupe_is_looked_up_not_resent() -> None:
    reply = _reply()
    BEHAVIOUR["mode"] = "lost-answer"
    assert send_reply_now(reply.pk) == Reply.State.SENT
    assert BEHAVIOUR["sends"] == 1 and Reply.objects.get().external_id == "s1"


def test_a_platform_that_was_down_is_tried_again_later() -> None:
    reply = _reply()
    BEHAVIOUR["mode"] = "down"
    with pytest.raises(TransientSendError):
        send_reply_now(reply.pk)
    assert Reply.objects.get().state == Reply.State.QUEUED and not PUBLISHED
    BEHAVIOUR["mode"] = "ok"
    assert send_reply_now(reply.pk) == Reply.State.SENT and len(PUBLISHED) == 1


def test_a_lost_answer_where_the_platform_cannot_look_waits_for_an_agent() -> None:
    reply = _reply(can_look=False)
    BEHAVIOUR["mode"] = "lost-answer"
    assert send_reply_now(reply.pk) == Reply.State.UNKNOWN
    stored = Reply.objects.get()
    assert "delivery unknown" in stored.error and BEHAVIOUR["sends"] == 1


def test_a_platform_that_dedupes_is_simply_tried_again() -> None:
    reply = _reply(idempotent=True, can_look=False)
    BEHAVIOUR["mode"] = "lost-answer"
    with pytest.raises(TransientSendError):
        send_reply_now(reply.pk)
    BEHAVIOUR["mode"] = "ok"
    assert send_reply_now(reply.pk) == Reply.State.SENT
    assert len(PUBLISHED) == 1 and Reply.objects.get().external_id == "s1"


def test_rate_limited_goes_back_to_the_queue_until_the_platforms_time() -> None:
    reply = _reply()
    BEHAVIOUR["mode"] = "rate-limited"
    ProcrastinateJob.objects.filter(task_name="outbox.send_reply").update(status="doing")  # this very job
    before = datetime.now(UTC)
    assert send_reply_now(reply.pk) == Reply.State.QUEUED
    stored = Reply.objects.get()
    assert "asked to wait until" in stored.error
    waiting = ProcrastinateJob.objects.filter(task_name="outbox.send_reply", status="todo").order_by("-id").first()
    assert waiting is not None and waiting.scheduled_at is not None
    assert waiting.scheduled_at >= before + timedelta(minutes=4)
