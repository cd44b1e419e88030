"""The inbox's HTML holds nothing that its Content-Security-Policy (``script-src 'self'; style-src 'self'``) blocks:
no ``style`` attribute, no ``<style>`` element, no inline ``<script>``, no event-handler attribute, no
``javascript:`` URL and no ``hx-on`` (htmx would need eval for it). Styling lives in inbox.css and behaviour in
inbox.js; a blocked inline style fails silently in the browser, so this parses every page and fragment instead."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone
from inbox_support import HX, seed_demo

from caredesk.cases.actions import do_add_note, do_assign_case, lock_case
from caredesk.cases.models import Case, Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.outbox.actions import do_mark_reply_failed, do_queue_reply
from csp_markup import blocked

pytestmark = pytest.mark.django_db


def test_the_finder_finds_what_the_policy_blocks() -> None:
    html = ('<div style="color:red"><style>p{}</style><script>alert(1)</script><script src="/s.js"></script>'
            '<a href=" JavaScript:alert(1)" onclick="x()">x</a><button hx-on:click="y()">b</button>'
            '<script type="application/json">{"a": 1}</script></div>')
    assert blocked(html) == [
        "<div style='color:red'>", "<style> element", "inline <script>: 'alert(1)'",
        "<a href=javascript:…>", "<a onclick=…> (event handler)", "<button hx-on:click=…> (htmx inline handler)",
    ]
    # Attacker text that only looks like markup stays text and is not reported.
    assert blocked("<p>&lt;div style=&quot;x&quot;&gt; onclick=alert(1)</p>") == []


@pytest.fixture
def busy_desk(installation: ConnectorInstallation, agent: User, other_agent: User) -> list[Case]:
    """The replay script's first minutes (brand replies, DMs, personal data, threads), plus an assigned case
    with a note, a sent-looking queued reply and a failed one: every part of the case pane has something in it."""
    now = timezone.now()
    cases = seed_demo(installation, now, seconds=600)
    assert len(cases) >= 5
    first = cases[0]
    post = Post.objects.filter(case=first).order_by("created_at").first()
    assert post is not None
    with transaction.atomic():
        do_assign_case(lock_case(first.pk), agent, agent, now)
        do_add_note(lock_case(first.pk), agent, 'Called them back <b style="x">not bold</b>', now)
        do_queue_reply(lock_case(first.pk), post, "We're on it.", agent, now)
        failed = do_queue_reply(lock_case(first.pk), post, "Second try", agent, now)
        do_mark_reply_failed(failed, "platform said no", now)
        do_assign_case(lock_case(cases[1].pk), other_agent, other_agent, now)
    return cases


def test_case_pages_and_the_list_have_no_inline_style_or_script(
    agent_client: Client, other_client: Client, busy_desk: list[Case]
) -> None:
    pages = {
        "/": agent_client.get("/"),
        "/ (all, urgent)": agent_client.get("/?queue=all&sort=urgent"),
        "/cases/ fragment": agent_client.get("/cases/?queue=all", headers=HX),
        "/login/": Client().get("/login/"),
    }
    for case in busy_desk:
        # The other agent is replying: the presence chip renders.
        assert other_client.post(f"/cases/{case.pk}/presence", {"mode": "replying"}).status_code == 204
        pages[f"/cases/{case.pk}/"] = agent_client.get(f"/cases/{case.pk}/")
        pages[f"/cases/{case.pk}/ fragment"] = agent_client.get(f"/cases/{case.pk}/", headers=HX)
        pages[f"/cases/{case.pk}/live"] = agent_client.get(f"/cases/{case.pk}/live", headers=HX)
        pages[f"/cases/{case.pk}/presence"] = agent_client.get(f"/cases/{case.pk}/presence", headers=HX)
    # A refused reply (422) re-renders the composer with the error.
    first = busy_desk[0]
    post = Post.objects.filter(case=first).order_by("created_at").first()
    assert post is not None
    pages["422 reply"] = agent_client.post(f"/cases/{first.pk}/reply", {"text": "x" * 5000, "post": post.pk},
                                           headers=HX)
    problems: dict[str, list[str]] = {}
    for name, response in pages.items():
        assert response.status_code in (200, 422), (name, response.status_code)
        found = blocked(response.content.decode())
        if found:
            problems[name] = found
    assert problems == {}
    assert pages["422 reply"].status_code == 422
    case_html = pages[f"/cases/{first.pk}/"].content.decode()
    assert "platform said no" in case_html and "is replying" in case_html  # the states did render
