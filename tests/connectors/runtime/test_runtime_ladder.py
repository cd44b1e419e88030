"""The runtime follows the listening ladder: a refused stream falls to polling and climbs back by itself, a
webhook that works means no stream and only catch-up polls, and a paid stream stops at its budget."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from django.db import transaction
from django.test import Client
from runtime_helpers import listening, wait_until

from caredesk.cases.models import Post
from caredesk.connectors.actions import do_create_installation, do_update_installation, lock_installation
from caredesk.connectors.costs.ledger import cost_summary, do_set_budget
from caredesk.connectors.health import connector_health
from caredesk.connectors.ladder import FAILURES_TO_FALL, Ladder
from caredesk.connectors.listen import runner
from caredesk.connectors.listen.runner import streamable_installation_ids
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.tasks import poll_installation, pollable_installation_ids
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "hook-secret"


def _create(platform, key: str, name: str = "ladder") -> ConnectorInstallation:
    return do_create_installation(make_brand(), key, name, {"url": platform.url},
                                  credentials={"token": "good-token", "secret": SECRET})


def _ids(installation: ConnectorInstallation) -> list[str]:
    return sorted(Post.objects.filter(installation=installation).values_list("external_id", flat=True))


def _polls(platform) -> int:
    return sum(1 for path, _ in platform.requests if path == "/posts")


def _stream_failed(installation: ConnectorInstallation) -> bool:
    state = ConnectorInstallation.objects.get(pk=installation.pk).ladder_state
    return Ladder.from_json(state)["stream"].failed(datetime.now(UTC))


def test_a_refused_stream_falls_to_polling_and_climbs_back_once_its_while_has_passed(platform, settings):
    settings.CAREDESK_RUNG_RETRY_SECONDS = 3
    installation = _create(platform, "test_stream_and_poll")
    platform.stream_refusal = "client not enrolled for this product"
    platform.post("p1", "my internet is down", author="u1")
    with listening() as listener, httpx.Client() as http:
        wait_until(lambda: _stream_failed(installation), what="the stream rung failed")
        wait_until(lambda: installation.pk not in listener.streams, what="the listener letting it go")
        assert installation.pk not in streamable_installation_ids()
        health = connector_health(ConnectorInstallation.objects.get(pk=installation.pk))
        assert health["rung"] == "poll"
        assert health["rung_reasons"][0].startswith(
            "stream: refused by the platform (the platform answered 403: client not enrolled for this product) "
            "until ")
        # Polled meanwhile: nothing goes unread while the stream is refused.
        assert installation.pk in pollable_installation_ids()
        assert poll_installation(installation.pk, datetime.now(UTC), http) == 1
        assert ConnectorInstallation.objects.get(pk=installation.pk).listen_rung == "poll"
        platform.stream_refusal = None  # enrolled at last
        platform.post("p2", "still down", author="u2")
        # After the while, the listener takes it again and the stream resumes from the polled cursor.
        wait_until(lambda: _ids(installation) == ["p1", "p2"], what="p2 by the stream")
        assert platform.stream_afters()[-1] == 1
        assert connector_health(ConnectorInstallation.objects.get(pk=installation.pk))["rung"] == "stream"
        polls = _polls(platform)
        assert installation.pk not in pollable_installation_ids()
        assert poll_installation(installation.pk, datetime.now(UTC) + timedelta(minutes=5), http) == 0
        assert _polls(platform) == polls  # the stream listens: the poll API is not asked
        assert ConnectorInstallation.objects.get(pk=installation.pk).listen_rung == "stream"
    assert Ladder.from_json(ConnectorInstallation.objects.get(pk=installation.pk).ladder_state)["stream"].falls == 0


def test_a_stream_that_keeps_failing_falls_to_polling(platform):
    installation = _create(platform, "test_stream_and_poll")
    platform.unavailable = FAILURES_TO_FALL
    with listening() as listener:
        wait_until(lambda: _stream_failed(installation), what="the stream rung failed")
        wait_until(lambda: installation.pk not in listener.streams, what="the listener letting it go")
    state = Ladder.from_json(ConnectorInstallation.objects.get(pk=installation.pk).ladder_state)["stream"]
    assert state.reason == f"failed {FAILURES_TO_FALL} times in a row (last: the platform answered 503)"
    assert installation.pk in pollable_installation_ids()


def test_a_stream_only_platform_keeps_reconnecting_instead_of_falling(platform):
    installation = do_create_installation(make_brand(), "test_stream", "only", {"url": platform.url},
                                          credentials={"token": "good-token"})
    platform.unavailable = FAILURES_TO_FALL + 1
    platform.post("p1", "no signal", author="u1")
    with listening():
        wait_until(lambda: _ids(installation) == ["p1"], timeout=90, what="the post after the failures")
    assert not _stream_failed(installation)


def _challenge(installation: ConnectorInstallation) -> None:
    answered = Client().get(f"/hooks/{installation.pk}", {"challenge": "crc-token"})
    assert answered.status_code == 200 and answered.json() == {"challenge": "crc-token"}


def test_a_webhook_that_works_is_not_streamed_and_gets_catch_up_polls_only(platform, settings):
    settings.CAREDESK_CATCHUP_POLL_SECONDS = 900
    installation = _create(platform, "test_ladder")
    platform.post("p1", "my router is down", author="u1")
    with listening() as listener:
        # No delivery yet: the stream is the best rung that works.
        wait_until(lambda: installation.pk in listener.streams and _ids(installation) == ["p1"], what="streamed")
        _challenge(installation)  # the platform's CRC check reached us: the webhook works
        wait_until(lambda: installation.pk not in listener.streams, what="the stream let go for the webhook")
        time.sleep(1)  # several scans: it is not taken again
        assert installation.pk not in listener.streams and platform.open_streams == 0
    health = connector_health(ConnectorInstallation.objects.get(pk=installation.pk))
    assert health["rung"] == "webhook" and health["rung_reasons"] == []
    assert installation.pk not in streamable_installation_ids()
    platform.post("p2", "a delivery we missed", author="u2")
    now = datetime.now(UTC)
    with httpx.Client() as http:
        assert installation.pk in pollable_installation_ids(now)  # a catch-up poll is due (never polled)
        assert poll_installation(installation.pk, now, http) == 1
        assert _ids(installation) == ["p1", "p2"]
        polls = _polls(platform)
        later = now + timedelta(minutes=10)
        assert installation.pk not in pollable_installation_ids(later)
        assert poll_installation(installation.pk, later, http) == 0 and _polls(platform) == polls
        catch_up = now + timedelta(seconds=901)
        assert installation.pk in pollable_installation_ids(catch_up)
        assert poll_installation(installation.pk, catch_up, http) == 0  # asked, nothing new
        assert _polls(platform) == polls + 1
    assert ConnectorInstallation.objects.get(pk=installation.pk).listen_rung == "webhook"


def test_new_credentials_lift_a_refused_rung(platform):
    installation = _create(platform, "test_stream_and_poll")
    platform.stream_refusal = "client not enrolled"
    with listening():
        wait_until(lambda: _stream_failed(installation), what="the stream rung failed")
    with transaction.atomic():
        do_update_installation(lock_installation(installation.pk), credentials={"token": "good-token"})
    assert not _stream_failed(installation) and installation.pk in streamable_installation_ids()


def test_a_paid_stream_stops_at_its_budget_before_the_platform_sends_more_and_resumes_when_raised(
        platform, monkeypatch):
    monkeypatch.setattr(runner, "BUDGET_CHECK_SECONDS", 0.3)
    installation = do_create_installation(make_brand(), "test_paid_stream", "X stream", {"url": platform.url},
                                          credentials={"token": "good-token"})
    # $0.01: two post reads at $0.005; a third would pass it.
    do_set_budget(installation, Decimal("0.01"))
    platform.post("p1", "my router is down", author="u1")
    platform.post("p2", "my bill is wrong", author="u2")
    with listening() as listener:
        wait_until(lambda: _ids(installation) == ["p1", "p2"], what="the two affordable posts")
        wait_until(lambda: platform.open_streams == 0, what="the stream closed at the budget")
        connections = platform.connections
        platform.post("p3", "hello?", author="u3")
        time.sleep(1.5)  # several budget checks: it stays closed, and keeps its lease
        assert platform.sent == [1, 2] and platform.connections == connections
        assert installation.pk in listener.streams
        stopped = ConnectorInstallation.objects.get(pk=installation.pk)
        health = connector_health(stopped)
        assert health["reads_stopped"] and health["rung"] == "stream"
        assert stopped.last_error.startswith("monthly budget of $0.01 reached: reads stopped until ")
        assert stopped.health == "degraded" and stopped.consecutive_failures == 0
        assert cost_summary(stopped, datetime.now(UTC)).month == Decimal("0.01")
        do_set_budget(stopped, Decimal("1.00"))  # raised: it connects again by itself
        wait_until(lambda: _ids(installation) == ["p1", "p2", "p3"], what="p3 once the budget allows")
    assert platform.stream_afters()[-1] == 2 and platform.sent == [1, 2, 3]
    resumed = ConnectorInstallation.objects.get(pk=installation.pk)
    assert resumed.health == "ok" and resumed.last_error == ""


def test_a_paid_stream_over_its_budget_does_not_connect(platform, monkeypatch):
    monkeypatch.setattr(runner, "BUDGET_CHECK_SECONDS", 0.3)
    installation = do_create_installation(make_brand(), "test_paid_stream", "X stream", {"url": platform.url},
                                          credentials={"token": "good-token"})
    do_set_budget(installation, Decimal("0.00"))
    platform.post("p1", "my router is down", author="u1")
    with listening() as listener:
        wait_until(lambda: installation.pk in listener.streams, what="the lease taken")
        wait_until(lambda: "reads stopped" in ConnectorInstallation.objects.get(pk=installation.pk).last_error,
                   what="the budget stop recorded")
        time.sleep(1)
    assert platform.connections == 0 and not platform.requests and _ids(installation) == []


def test_a_paid_stream_whose_own_prices_cannot_be_used_does_not_connect(platform, monkeypatch):
    monkeypatch.setattr(runner, "BUDGET_CHECK_SECONDS", 0.3)
    installation = do_create_installation(make_brand(), "test_paid_stream", "X stream", {"url": platform.url},
                                          credentials={"token": "good-token"})
    ConnectorInstallation.objects.filter(pk=installation.pk).update(price_overrides={"post_read": "cheap"})
    with listening() as listener:
        wait_until(lambda: "own prices cannot be used" in ConnectorInstallation.objects.get(
            pk=installation.pk).last_error, what="the reason recorded")
        assert installation.pk in listener.streams  # held, not crashed: it connects once the prices are fixed
    assert platform.connections == 0
