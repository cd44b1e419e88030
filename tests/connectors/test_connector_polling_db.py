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
