"""Collision warnings: heartbeats make an agent visible to the others on the same case."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from inbox_support import HX

from caredesk.cases import events
from caredesk.cases.models import Case
from caredesk.inbox.models import CasePresence

pytestmark = pytest.mark.django_db


def test_heartbeat_shows_for_the_other_agent_not_for_oneself(
    agent_client: Client, other_client: Client, case: Case
) -> None:
    assert agent_client.post(f"/cases/{case.pk}/presence", {"mode": "viewing"}).status_code == 204
    theirs = other_client.get(f"/cases/{case.pk}/presence", headers=HX).content.decode()
    assert "ana is viewing this case" in theirs
    mine = agent_client.get(f"/cases/{case.pk}/presence", headers=HX).content.decode()
    assert "is viewing" not in mine
    # The whole pane shows it too.
    pane = other_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
    assert "ana is viewing this case" in pane


def test_replying_mode_and_leaving(agent_client: Client, other_client: Client, case: Case) -> None:
    agent_client.post(f"/cases/{case.pk}/presence", {"mode": "replying"})
    assert "ana is replying…" in other_client.get(f"/cases/{case.pk}/presence", headers=HX).content.decode()
    assert agent_client.post(f"/cases/{case.pk}/leave").status_code == 204
    assert not CasePresence.objects.exists()
    assert "ana" not in other_client.get(f"/cases/{case.pk}/presence", headers=HX).content.decode()


def test_unknown_mode_counts_as_viewing_and_stale_presence_expires(
    agent_client: Client, other_client: Client, case: Case
) -> None:
    agent_client.post(f"/cases/{case.pk}/presence", {"mode": "hacking"})
    assert CasePresence.objects.get().mode == "viewing"
    CasePresence.objects.update(last_seen=timezone.now() - timedelta(minutes=5))
    assert "ana" not in other_client.get(f"/cases/{case.pk}/presence", headers=HX).content.decode()


def test_heartbeat_announces_presence_after_commit(
    agent_client: Client, case: Case, django_capture_on_commit_callbacks: object
) -> None:
    seen: list[events.Published] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            agent_client.post(f"/cases/{case.pk}/presence", {"mode": "viewing"})
        assert [e.presence_case_id for e in seen] == [case.pk]
        seen.clear()
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            agent_client.post(f"/cases/{case.pk}/presence", {"mode": "viewing"})
        assert seen == []  # nothing new for the others
    finally:
        unsubscribe()


def test_presence_of_missing_case_is_404(agent_client: Client) -> None:
    assert agent_client.post("/cases/999999/presence", {"mode": "viewing"}).status_code == 404
