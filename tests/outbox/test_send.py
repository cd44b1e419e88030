from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from django.db import IntegrityError, transaction
from procrastinate.contrib.django.models import ProcrastinateJob

from caredesk.cases.models import Case, Post
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.base import Capability, ConnectorError, OutboundReply, Provider, ProviderConfig, SentReply
from caredesk.connectors.registry import register_provider, unregister_provider
from caredesk.outbox.actions import ReplyError, do_queue_reply, do_retry_reply
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import TransientSendError, send_reply_now
from factories import T0, ingest, make_brand, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db


class HttpPlatformConfig(ProviderConfig):
    base_url: str = "http://platform.test"


class HttpPlatform(Provider[HttpPlatformConfig]):
    """A minimal HTTP provider, as a third party would write one: posts replies to ``/statuses``."""

    key = "http-test"
    display_name = "HTTP test platform"
    capabilities = frozenset({Capability.REPLY})
    config_model = HttpPlatformConfig
    idempotent_replies = True  # it sends the Idempotency-Key, which the platform honours

    @property
    def platform(self) -> str:
        return "mastodon"

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        assert self.http is not None
        response = self.http.post(
            f"{self.config.base_url}/statuses",
            json={"status": reply.text, "in_reply_to_id": reply.in_reply_to_external_id},
            headers={"Idempotency-Key": reply.idempotency_key},
        )
        if response.status_code == 422:
            raise ConnectorError(response.json()["error"])
        response.raise_for_status()
        return SentReply(external_id=response.json()["id"], created_at=now)


@pytest.fixture
def http_provider() -> Iterator[None]:
    register_provider(HttpPlatform)
    yield
    unregister_provider(HttpPlatform.key)


def _queue(text: str = "Can I help?", key: str | None = None, installation=None) -> Reply:
    installation = installation or make_installation()
    ingest(installation, make_post("my internet is down", external_id=f"in-{installation.pk}"))
    case = Case.objects.get(posts__installation=installation)
    agent = make_user()
    with transaction.atomic():
        return do_queue_reply(case, case.posts.get(), text, agent, T0, idempotency_key=key)


def test_queue_creates_reply_and_job_together():
    reply = _queue()
    assert reply.state == Reply.State.QUEUED
    job = ProcrastinateJob.objects.get(task_name="outbox.send_reply")
    assert job.args == {"reply_id": reply.pk}


def test_same_idempotency_key_queues_once():
    reply = _queue(key="k-1")
    with transaction.atomic():
        again = do_queue_reply(reply.case, reply.in_reply_to, "Can I help?", reply.author, T0, idempotency_key="k-1")
    assert again.pk == reply.pk
    assert Reply.objects.count() == 1
    assert ProcrastinateJob.objects.filter(task_name="outbox.send_reply").count() == 1


def test_too_long_reply_is_refused_and_nothing_is_queued():
    installation = make_installation()
    ingest(installation, make_post("my internet is down", external_id="a"))
    case = Case.objects.get()
    with pytest.raises(ReplyError, match="280"), transaction.atomic():
        do_queue_reply(case, case.posts.get(), "x" * 281, make_user(), T0)
    assert not Reply.objects.exists()
    assert not ProcrastinateJob.objects.exists()


def test_send_through_replay_marks_sent_and_records_outbound_post():
    reply = _queue()
    assert send_reply_now(reply.pk) == Reply.State.SENT
    reply.refresh_from_db()
    assert reply.state == Reply.State.SENT and reply.external_id and reply.sent_at
    post = reply.post
    assert post is not None and post.direction == Post.Direction.OUTBOUND and post.case_id == reply.case_id
    case = Case.objects.get(pk=reply.case_id)
    assert case.first_response_at is not None and case.status == Case.Status.PENDING
    # A second run of the same job does not send again.
    assert send_reply_now(reply.pk) == Reply.State.SENT
    assert Post.objects.filter(direction="outbound").count() == 1


def test_platform_echo_of_our_reply_is_not_new_work():
    reply = _queue()
    send_reply_now(reply.pk)
    reply.refresh_from_db()
    echo = make_post("Can I help?", external_id=reply.external_id, author_id="someone-else")
    report = ingest(reply.installation, echo)
    assert report.received == 0 and report.duplicates == 1
    assert Case.objects.count() == 1


def test_interrupted_send_is_reported_not_repeated():
    # Left sending by a send that never reported back, on a platform that cannot say whether it went out.
    reply = _queue()
    Reply.objects.filter(pk=reply.pk).update(state=Reply.State.SENDING, state_since=None)
    assert send_reply_now(reply.pk) == Reply.State.UNKNOWN
    reply.refresh_from_db()
    assert "delivery unknown" in reply.error


def _http_installation():
    return do_create_installation(make_brand("Http Brand"), "http-test", "http", {"base_url": "http://platform.test"})


def test_platform_refusal_fails_visibly(http_provider):
    reply = _queue(installation=_http_installation())

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "Validation failed: text too long for this instance"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        assert send_reply_now(reply.pk, http) == Reply.State.FAILED
    reply.refresh_from_db()
    assert reply.state == Reply.State.FAILED and "too long" in reply.error
    with transaction.atomic():
        do_retry_reply(reply, reply.author, T0)
    reply.refresh_from_db()
    assert reply.state == Reply.State.QUEUED


def test_network_error_requeues_then_sends_once_with_idempotency_key(http_provider):
    reply = _queue(installation=_http_installation())
    calls: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json={"id": "109999"})

    with httpx.Client(transport=httpx.MockTransport(flaky)) as http:
        with pytest.raises(TransientSendError):
            send_reply_now(reply.pk, http)
        reply.refresh_from_db()
        assert reply.state == Reply.State.QUEUED
        assert send_reply_now(reply.pk, http) == Reply.State.SENT
    assert {r.headers["Idempotency-Key"] for r in calls} == {reply.idempotency_key}
    reply.refresh_from_db()
    assert reply.external_id == "109999" and reply.attempts == 2


def test_idempotency_key_is_unique_in_the_database():
    reply = _queue(key="dup")
    with pytest.raises(IntegrityError), transaction.atomic():
        Reply.objects.create(
            case=reply.case, in_reply_to=reply.in_reply_to, installation=reply.installation, author=reply.author,
            text="x", idempotency_key="dup", created_at=datetime.now(UTC),
        )
