"""Who hears what on the live stream: two brands and a person of every role, through the real ``/stream`` view.

A stream carries only the events of the brands whose cases the person may see (the access layer's rule), including
presence, and it ends when its session ends (logout), when the person is deactivated, and stops carrying a brand
when the membership is removed. These need real commits because PostgreSQL delivers NOTIFY only on commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import AsyncClient, Client
from django.utils import timezone
from inbox_support import in_thread
from inbox_support import parse_sse as _parse

from caredesk.accounts.actions import do_deactivate_user, do_remove_membership
from caredesk.accounts.models import Brand
from caredesk.cases.actions import do_add_note, lock_case
from caredesk.cases.models import Case
from caredesk.inbox.actions import do_heartbeat
from factories import make_brand, make_case, make_installation, make_user
from roles import SEES, make_people

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 10.0


@pytest.fixture
def world(transactional_db: None) -> dict[str, Any]:
    nimbus, acme = make_brand("Nimbus"), make_brand("Acme")
    people = make_people(nimbus, acme)
    cases = {"nimbus": make_case(make_installation(nimbus)), "acme": make_case(make_installation(acme))}
    return {"brands": {"nimbus": nimbus, "acme": acme}, "people": people, "cases": cases}


class Listener:
    """One person's open ``/stream``, read in a task; ``events`` fills as the stream delivers."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self.status = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            response = await self.client.get("/stream")
            self.status = response.status_code
            if self.status != 200:
                return
            async for chunk in response.streaming_content:  # type: ignore[attr-defined]
                self.connected.set()
                fields = _parse(chunk)
                if "event" in fields:
                    self.events.append(fields)
        finally:
            self.connected.set()
            self.closed.set()

    def kinds(self) -> list[tuple[str, Any]]:
        return [(e["event"], e["data"].get("case")) for e in self.events]

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _open(user: User) -> Listener:
    client = AsyncClient()
    await client.aforce_login(user)
    listener = Listener(client)
    await asyncio.wait_for(listener.connected.wait(), TIMEOUT)
    return listener


def _note(case_id: int, user_id: int, text: str) -> None:
    with transaction.atomic():
        do_add_note(lock_case(case_id), User.objects.get(pk=user_id), text, timezone.now())


def _beat(case_id: int, user_id: int) -> None:
    with transaction.atomic():
        do_heartbeat(Case.objects.get(pk=case_id), User.objects.get(pk=user_id), "replying", timezone.now())


async def _settle(seconds: float = 1.0) -> None:
    await asyncio.sleep(seconds)


def test_each_role_hears_exactly_its_brands_events(world: dict[str, Any]) -> None:
    people, cases = world["people"], world["cases"]
    owner = people["owner"]

    async def scenario() -> dict[str, list[tuple[str, Any]]]:
        listeners = {who: await _open(user) for who, user in people.items()}
        try:
            for brand in ("nimbus", "acme"):
                await in_thread(lambda b=brand: _note(cases[b].pk, owner.pk, f"{b} note"))()
                await in_thread(lambda b=brand: _beat(cases[b].pk, owner.pk))()
            await _settle(1.5)
            return {who: listener.kinds() for who, listener in listeners.items()}
        finally:
            for listener in listeners.values():
                await listener.close()

    heard = asyncio.run(scenario())
    for who, brands in SEES.items():
        expected = set()
        for brand in brands:
            expected |= {("activity", cases[brand].pk), ("presence", cases[brand].pk)}
        assert sorted(heard[who]) == sorted(expected), who  # each event once, and no other brand's


def test_logout_ends_the_stream_of_that_session(world: dict[str, Any]) -> None:
    agent = world["people"]["agent"]

    async def scenario() -> tuple[Listener, int]:
        listener = await _open(agent)
        try:
            sync = Client()
            sync.cookies = listener.client.cookies
            logout = await in_thread(lambda: sync.post("/logout/"))()
            await asyncio.wait_for(listener.closed.wait(), TIMEOUT)
            return listener, logout.status_code
        finally:
            await listener.close()

    listener, status = asyncio.run(scenario())
    assert status == 302
    assert listener.events[-1] == {"event": "ended", "data": {"reason": "signed out"}}


def test_deactivation_ends_every_stream_of_the_person(world: dict[str, Any]) -> None:
    agent, other = world["people"]["agent"], world["people"]["supervisor"]

    async def scenario() -> tuple[Listener, Listener, Listener]:
        first, second, bystander = await _open(agent), await _open(agent), await _open(other)
        try:
            await in_thread(lambda: do_deactivate_user(User.objects.get(pk=agent.pk)))()
            await asyncio.wait_for(first.closed.wait(), TIMEOUT)
            await asyncio.wait_for(second.closed.wait(), TIMEOUT)
            await _settle(0.5)
            assert not bystander.closed.is_set()
            return first, second, bystander
        finally:
            for listener in (first, second, bystander):
                await listener.close()

    first, second, bystander = asyncio.run(scenario())
    for listener in (first, second):
        assert listener.events[-1]["event"] == "ended"
    assert all(e["event"] != "ended" for e in bystander.events)


def test_a_removed_membership_stops_that_brands_events_at_once(world: dict[str, Any]) -> None:
    people, cases, brands = world["people"], world["cases"], world["brands"]
    owner = people["owner"]
    both = make_user("both", role="agent", brands=[brands["nimbus"], brands["acme"]])

    async def scenario() -> list[tuple[str, Any]]:
        listener = await _open(both)
        try:
            await in_thread(lambda: _note(cases["acme"].pk, owner.pk, "before"))()
            await _settle()
            nimbus: Brand = brands["nimbus"]
            await in_thread(lambda: do_remove_membership(User.objects.get(pk=both.pk), nimbus))()
            await _settle(0.5)
            await in_thread(lambda: _note(cases["nimbus"].pk, owner.pk, "after, not for them"))()
            await in_thread(lambda: _note(cases["acme"].pk, owner.pk, "after, still theirs"))()
            await _settle(1.5)
            assert not listener.closed.is_set()  # still signed in, still an agent of Acme
            return listener.kinds()
        finally:
            await listener.close()

    heard = asyncio.run(scenario())
    assert heard == [("activity", cases["acme"].pk), ("activity", cases["acme"].pk)]


def test_a_stream_without_a_session_is_refused(world: dict[str, Any]) -> None:
    async def scenario() -> int:
        response = await AsyncClient().get("/stream")
        return response.status_code

    assert asyncio.run(scenario()) == 403


def test_changes_to_a_person_are_announced_after_commit_only(world: dict[str, Any]) -> None:
    from caredesk.accounts.actions import do_set_membership
    from caredesk.cases import events

    agent, acme = world["people"]["agent"], world["brands"]["acme"]
    seen: list[events.Published] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            do_set_membership(agent, acme, "agent")
            raise RuntimeError("rolled back")
        assert seen == []
        with transaction.atomic():
            do_set_membership(agent, acme, "agent")
            assert seen == []
        do_remove_membership(agent, acme)
        do_remove_membership(agent, acme)  # nothing to remove: nothing to announce
        client = Client()
        client.force_login(agent)
        client.post("/logout/")
        do_deactivate_user(User.objects.get(pk=agent.pk))
        assert [e.user_id for e in seen] == [agent.pk] * 4
    finally:
        unsubscribe()
