"""Polls obey the platform: a 429 makes the next poll wait for Retry-After, failures back off, refused
credentials stop polling until an admin changes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.db import transaction

from caredesk.cases.models import Post
from caredesk.connectors.actions import do_create_installation, do_update_installation, lock_installation
from caredesk.connectors.health import connector_health
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.tasks import poll_installation, pollable_installation_ids
from factories import make_brand

pytestmark = pytest.mark.django_db


@pytest.fixture
def poller(platform) -> ConnectorInstallation:
    return do_create_installation(make_brand(), "test_poll", "poll", {"url": platform.url},
                                  credentials={"token": "good-token"})


def _polls(platform) -> int:
    return sum(1 for path, _ in platform.requests if path == "/posts")


def test_a_rate_limited_poll_waits_until_the_platform_allows(platform, poller):
    now = datetime.now(UTC)
    platform.post("p1", "my internet is down", author="u1")
    platform.rate_limited = 1
    platform.retry_after = 120
    with httpx.Client() as http:
        assert poll_installation(poller.pk, now, http) == 0
        poller.refresh_from_db()
        assert poller.retry_at is not None and poller.retry_at >= now + timedelta(seconds=110)
        assert poller.health == "degraded" and "slow down" in poller.last_error
        # Before retry_at the platform is not asked at all.
        assert poll_installation(poller.pk, now + timedelta(seconds=60), http) == 0
        assert _polls(platform) == 1
        assert poll_installation(poller.pk, poller.retry_at + timedelta(seconds=1), http) == 1
    assert _polls(platform) == 2
    poller.refresh_from_db()
    assert poller.retry_at is None and poller.health == "ok" and poller.cursor == {"after": 1}
    health = connector_health(poller)
    assert health["lag_seconds"] is not None and health["last_event_at"] and health["connected"] is None
    assert health["rate_limit_remaining"] == 299 and health["failed_payloads"] == 0


def test_failures_back_off_exponentially(platform, poller):
    now = datetime.now(UTC)
    ConnectorInstallation.objects.filter(pk=poller.pk).update(config={"url": "http://127.0.0.1:9"})  # nothing there
    waits = []
    with httpx.Client(timeout=2) as http:
        for _ in range(4):
            assert poll_installation(poller.pk, now, http) == 0
            poller.refresh_from_db()
            assert poller.retry_at is not None
            waits.append((poller.retry_at - now).total_seconds())
            now = poller.retry_at
    assert poller.consecutive_failures == 4 and poller.health == "failing"
    # Jittered (75-100 % of) 2, 4, 8, 16 poll intervals.
    for n, wait in enumerate(waits):
        assert 0.75 * 2 * 2**n <= wait <= 2 * 2**n


def test_refused_credentials_stop_polling_until_an_admin_changes_them(platform, poller):
    now = datetime.now(UTC)
    platform.tokens = {"rotated"}
    platform.post("p1", "my internet is down", author="u1")
    with httpx.Client() as http:
        assert poll_installation(poller.pk, now, http) == 0
        poller.refresh_from_db()
        assert poller.auth_revoked_at is not None and poller.health == "failing"
        assert "an admin must change them" in poller.last_error
        assert poller.pk not in pollable_installation_ids()
        assert poll_installation(poller.pk, now + timedelta(hours=1), http) is None  # no retries, ever
        assert _polls(platform) == 1
        assert connector_health(poller)["credentials_refused"] is True
        with transaction.atomic():
            do_update_installation(lock_installation(poller.pk), credentials={"token": "rotated"})
        assert poller.pk in pollable_installation_ids()
        assert poll_installation(poller.pk, now + timedelta(hours=1), http) == 1
    assert Post.objects.filter(installation=poller).count() == 1


def test_a_provider_that_also_streams_is_polled_only_while_nobody_streams_it(platform):
    from caredesk.connectors.listen import lease

    both = do_create_installation(make_brand(), "test_stream_or_poll", "both", {"url": platform.url},
                                  credentials={"token": "good-token"})
    platform.post("p1", "my internet is down", author="u1")
    assert both.pk in pollable_installation_ids()
    assert lease.acquire(both.pk, "elsewhere:1:x", 60)  # a caredesk listen holds its stream
    assert both.pk not in pollable_installation_ids()
    with httpx.Client() as http:
        assert poll_installation(both.pk, datetime.now(UTC), http) == 0
        assert _polls(platform) == 0
        lease.release(both.pk, "elsewhere:1:x")  # the listener stopped: the worker's poll is the fallback
        assert both.pk in pollable_installation_ids()
        assert poll_installation(both.pk, datetime.now(UTC), http) == 1


def test_a_refused_poll_fails_the_poll_rung_for_a_while_then_it_is_tried_again(platform, poller):
    now = datetime.now(UTC)
    platform.poll_refusal = "this endpoint needs a higher access level"
    platform.post("p1", "my internet is down", author="u1")
    with httpx.Client() as http:
        assert poll_installation(poller.pk, now, http) == 0
        health = connector_health(ConnectorInstallation.objects.get(pk=poller.pk), now)
        assert health["rung"] == "import"
        [reason] = health["rung_reasons"]
        assert reason.startswith("poll: refused by the platform (the platform answered 403: this endpoint needs a "
                                 "higher access level) until ")
        assert health["rung_advice"].startswith("nothing automatic works: import an export with caredesk ingest")
        later = now + timedelta(minutes=30)
        assert poller.pk not in pollable_installation_ids(later)
        assert poll_installation(poller.pk, later, http) == 0 and _polls(platform) == 1  # not asked meanwhile
        platform.poll_refusal = None
        after = now + timedelta(hours=1, seconds=1)
        assert poller.pk in pollable_installation_ids(after)
        assert poll_installation(poller.pk, after, http) == 1
    assert connector_health(ConnectorInstallation.objects.get(pk=poller.pk), after)["rung"] == "poll"
