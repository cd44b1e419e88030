from __future__ import annotations

from datetime import timedelta

import pytest

from caredesk.cases.models import Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.tasks import poll_installation, pollable_installation_ids
from factories import T0, make_installation

pytestmark = pytest.mark.django_db


def test_poll_ingests_due_posts_and_saves_the_cursor():
    installation = make_installation(speed=1.0)
    assert installation.pk in pollable_installation_ids()
    first = poll_installation(installation.pk, T0)  # starts the show at T0: the posts due at once
    later = poll_installation(installation.pk, T0 + timedelta(seconds=60))
    assert first is not None and later
    received = first + later
    installation.refresh_from_db()
    assert received == Post.objects.filter(installation=installation).count()
    assert installation.cursor["position"] > 0 and installation.health == "ok"
    assert installation.posts_received == received
    # The same moment again brings nothing new: the cursor moved with the posts.
    assert poll_installation(installation.pk, T0 + timedelta(seconds=61)) == 0
    # The brand's own posts in the script were stored as outbound, never as new work.
    own = Post.objects.filter(installation=installation, author__external_id="brand-nimbus")
    assert all(p.direction == "outbound" for p in own)


def test_a_failing_installation_is_marked_and_keeps_its_cursor():
    installation = make_installation()
    ConnectorInstallation.objects.filter(pk=installation.pk).update(cursor={"started_at": "not a date"})
    for minute in range(3):
        assert poll_installation(installation.pk, T0 + timedelta(minutes=minute)) == 0
    installation.refresh_from_db()
    assert installation.health == "failing" and installation.consecutive_failures == 3
    assert "malformed" in installation.last_error
    assert installation.cursor == {"started_at": "not a date"}


def test_an_installation_whose_credentials_cannot_be_decrypted_fails_alone(settings):
    from caredesk.connectors.tasks import defer_polls

    broken, healthy = make_installation(), make_installation()
    # Encrypted on another machine: no key here opens it.
    from cryptography.fernet import Fernet

    ConnectorInstallation.objects.filter(pk=broken.pk).update(
        credentials_encrypted=Fernet(Fernet.generate_key()).encrypt(b'{"token": "x"}').decode()
    )
    assert poll_installation(broken.pk, T0) == 0
    assert poll_installation(healthy.pk, T0)
    broken.refresh_from_db()
    healthy.refresh_from_db()
    assert broken.health == "degraded" and "credentials cannot be decrypted" in broken.last_error
    assert healthy.health == "ok" and healthy.posts_received > 0
    # Each installation gets its own job, so the broken one cannot hold up the others.
    from procrastinate.contrib.django.models import ProcrastinateJob

    assert defer_polls() == 2
    assert defer_polls() == 0  # both still waiting: not deferred twice
    jobs = ProcrastinateJob.objects.filter(task_name="connectors.poll_installation", status="todo")
    assert sorted(j.args["installation_id"] for j in jobs) == sorted([broken.pk, healthy.pk])


def test_an_unexpected_error_is_recorded_as_that_installations_failure():
    installation = make_installation()
    # A config that validates but breaks the provider in a way nobody foresaw.
    ConnectorInstallation.objects.filter(pk=installation.pk).update(cursor={"position": "x", "started_at": None})
    assert poll_installation(installation.pk, T0) == 0
    installation.refresh_from_db()
    assert installation.health == "degraded" and installation.last_error


def test_a_second_poller_skips_an_installation_being_polled():
    import psycopg
    from django.db import connection

    from caredesk.connectors.tasks import _POLL_LOCK_NAMESPACE
    from caredesk.inbox.stream import database_conninfo

    installation = make_installation()
    with psycopg.connect(database_conninfo(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [_POLL_LOCK_NAMESPACE, installation.pk])
        assert poll_installation(installation.pk, T0) is None
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [_POLL_LOCK_NAMESPACE, installation.pk])
    assert connection.connection is not None
    assert poll_installation(installation.pk, T0)
