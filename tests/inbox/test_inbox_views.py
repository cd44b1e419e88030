"""The inbox pages: login, the case list (queues, filters, sort, query count) and the case pane."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape
from inbox_support import HX, MakeCase

from caredesk.accounts.actions import do_set_membership
from caredesk.cases.models import Author, Case, Post
from caredesk.inbox.presenters import get_topics, mask_for_display, pii_warning, topics_in_use, triage_chips
from factories import ingest, make_brand, make_installation, make_post, make_user

pytestmark = pytest.mark.django_db


def _row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="case-row-(\d+)"', html)]


# ---------------------------------------------------------------------------------------------------------------
# Login


@pytest.mark.parametrize(
    "path", ["/", "/cases/", "/cases/1/", "/cases/1/live", "/cases/1/presence"]
)
def test_pages_require_login(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_htmx_request_without_login_redirects_the_whole_page(client: Client) -> None:
    response = client.get("/cases/", headers=HX)
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/login/")


@pytest.mark.parametrize(
    "path", ["/cases/1/reply", "/cases/1/assign", "/cases/1/status", "/cases/1/notes", "/cases/1/labels",
             "/cases/1/leave", "/cases/1/replies/1/retry"],
)
def test_writes_require_login(client: Client, path: str) -> None:
    response = client.post(path, {})
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_stream_requires_login(client: Client) -> None:
    response = client.get("/stream")
    assert response.status_code == 403


def test_login_form_logs_in_and_logout_logs_out(client: Client, agent: User) -> None:
    page = client.get("/login/")
    assert page.status_code == 200 and "Content-Security-Policy" in page
    assert b'name="username"' in page.content and b'name="password"' in page.content
    bad = client.post("/login/", {"username": "ana", "password": "wrong-password"})
    assert bad.status_code == 200 and b"alert--error" in bad.content
    response = client.post("/login/", {"username": "ana", "password": "agent-password-1"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


# ---------------------------------------------------------------------------------------------------------------
# The case list


def test_inbox_page_renders_list_and_live_wiring(agent_client: Client, case: Case) -> None:
    response = agent_client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "script-src 'self';" in response["Content-Security-Policy"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert f'id="case-row-{case.pk}"' in html
    assert 'data-stream-url="/stream"' in html
    assert "/static/caredesk/htmx.min.js" in html and "/static/caredesk/inbox.js" in html
    assert 'name="csrf-token"' in html and "X-CSRFToken" in html
    assert "@customer" in html  # the customer's handle in the row


def test_row_shows_handle_subject_chips_assignee_platform(agent_client: Client, make_case: MakeCase,
                                                        agent: User) -> None:
    case = make_case("my bill doubled this month", handle="billy", topic="billing", priority=4,
                     sentiment="negative", assignee=agent)
    html = agent_client.get("/cases/", headers=HX).content.decode()
    row = html[html.index(f'id="case-row-{case.pk}"'):]
    row = row[: row.index("</a>")]
    assert "@billy" in row
    assert "my bill doubled this month" in row
    assert "billing" in row and "urgent" in row and "negative" in row
    assert "ana" in row and 'platform--x' in row


def test_queues_unassigned_mine_all_with_counts(agent_client: Client, make_case: MakeCase, agent: User,
                                                other_agent: User) -> None:
    free = make_case("nobody has this one")
    mine = make_case("this one is mine", assignee=agent, status="open")
    theirs = make_case("ben has this one", assignee=other_agent, status="open")
    done = make_case("resolved long ago", status="resolved")

    unassigned = agent_client.get("/cases/?queue=unassigned", headers=HX).content.decode()
    assert _row_ids(unassigned) == [free.pk]
    assert set(_row_ids(agent_client.get("/cases/?queue=mine", headers=HX).content.decode())) == {mine.pk}
    everything = agent_client.get("/cases/?queue=all", headers=HX).content.decode()
    assert set(_row_ids(everything)) == {free.pk, mine.pk, theirs.pk}
    assert done.pk not in _row_ids(everything)
    # Counts of active cases per queue, swapped in out of band.
    assert re.search(r'id="count-unassigned" hx-swap-oob="true">1<', unassigned)
    assert re.search(r'id="count-mine" hx-swap-oob="true">1<', unassigned)
    assert re.search(r'id="count-all" hx-swap-oob="true">3<', unassigned)
    page = agent_client.get("/").content.decode()
    assert re.search(r'id="count-all">3<', page)


def test_filters_status_topic_priority_needs_reply_brand(agent_client: Client, agent: User,
                                                        make_case: MakeCase) -> None:
    billing = make_case("charged twice", topic="billing", priority=3, needs_reply=True)
    outage = make_case("no signal", topic="outage", priority=4, needs_reply=False)
    pending = make_case("waiting on me", topic="billing", status="pending", needs_reply=True, priority=1)
    resolved = make_case("thanks all good", topic="praise", status="resolved", needs_reply=False)
    other_brand = make_installation(make_brand("AeroLark"))
    do_set_membership(agent, other_brand.brand, "agent")
    flight = make_case("flight delayed", installation_=other_brand, topic="travel")

    def ids(query: str) -> set[int]:
        return set(_row_ids(agent_client.get(f"/cases/?{query}", headers=HX).content.decode()))

    assert ids("") == {billing.pk, outage.pk, pending.pk, flight.pk}  # default: active cases, all queues
    assert ids("status=resolved") == {resolved.pk}
    assert ids("status=pending") == {pending.pk}
    assert ids("status=any") == {billing.pk, outage.pk, pending.pk, resolved.pk, flight.pk}
    assert ids("topic=billing") == {billing.pk, pending.pk}
    assert ids("priority=4") == {outage.pk}
    assert ids("needs_reply=on&topic=billing&priority=3") == {billing.pk}
    assert ids(f"brand={flight.brand_id}") == {flight.pk}
    # Nonsense values fall back to the defaults instead of failing.
    assert ids("status=bogus&priority=9&sort=sideways&queue=x&brand=abc") == ids("")


def test_sort_newest_and_most_urgent(agent_client: Client, make_case: MakeCase) -> None:
    old_urgent = make_case("old but urgent", minutes=0, priority=4, urgency=0.5)
    new_low = make_case("new and low", minutes=30, priority=1, urgency=0.1)
    mid_high = make_case("high, very urgent", minutes=10, priority=3, urgency=0.9)
    mid_high_less = make_case("high, less urgent", minutes=20, priority=3, urgency=0.6)
    newest = _row_ids(agent_client.get("/cases/?sort=newest", headers=HX).content.decode())
    assert newest == [new_low.pk, mid_high_less.pk, mid_high.pk, old_urgent.pk]
    urgent = _row_ids(agent_client.get("/cases/?sort=urgent", headers=HX).content.decode())
    assert urgent == [old_urgent.pk, mid_high.pk, mid_high_less.pk, new_low.pk]


def test_list_query_count_does_not_grow_with_cases(agent_client: Client, make_case: MakeCase, agent: User,
                                                   django_assert_max_num_queries: Any) -> None:
    for i in range(3):
        make_case(f"case number {i}", assignee=agent if i % 2 else None)

    def count(path: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert agent_client.get(path, headers=HX).status_code == 200
        return len(ctx.captured_queries)

    few = count("/cases/")
    for i in range(30):
        make_case(f"another case {i}", assignee=agent if i % 3 else None)
    assert count("/cases/") == few


# Each page's queries, exactly, so that an N+1 cannot creep back in. The list: session, user, memberships, the
# page, and one for the queue counts and the total together.
LIST_QUERIES = 5
# The whole inbox page adds the stream's position, the brands and the topics of the filters.
INBOX_QUERIES = LIST_QUERIES + 3


def test_each_list_view_costs_a_fixed_number_of_queries(agent_client: Client, make_case: MakeCase, agent: User,
                                                         django_assert_num_queries: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from caredesk.cases import paging
    from caredesk.inbox import presenters

    monkeypatch.setattr(presenters, "PAGE_SIZE", 4)
    for i in range(12):
        make_case(f"case number {i}", minutes=i, assignee=agent if i % 2 else None)
    for path in ("/cases/", "/cases/?sort=urgent&queue=all", "/cases/?queue=mine&status=any&needs_reply=on",
                 "/cases/?queue=unassigned&priority=2&topic=billing"):
        with django_assert_num_queries(LIST_QUERIES):
            agent_client.get(path, headers=HX)
    older = _pager_link(agent_client.get("/cases/", headers=HX).content.decode(), "next")
    assert older
    with django_assert_num_queries(LIST_QUERIES):  # a deeper page costs what the first does
        agent_client.get(older, headers=HX)
    with django_assert_num_queries(INBOX_QUERIES):
        agent_client.get("/")
    with django_assert_num_queries(INBOX_QUERIES):
        agent_client.get("/?status=any&sort=urgent")
    # over the exact limit, each count over it costs one planning-only EXPLAIN more: 6 mine, 6 unassigned, and 12
    # of all, which is also the default list's total (the same query, counted once)
    monkeypatch.setattr(paging, "EXACT_COUNT_LIMIT", 5)
    with django_assert_num_queries(LIST_QUERIES + 3):
        agent_client.get("/cases/", headers=HX)


def _pager_link(html: str, rel: str) -> str | None:
    """The HTMX address of the list's "newer" (``prev``) or "older" (``next``) link, if the list has one."""
    import html as html_lib

    found = re.search(rf'hx-get="([^"]+)" hx-target="#case-list" rel="{rel}"', html)
    return html_lib.unescape(found.group(1)) if found else None


@pytest.mark.parametrize("sort", ["newest", "urgent"])
def test_list_pages_by_cursor(agent_client: Client, make_case: MakeCase, monkeypatch: pytest.MonkeyPatch,
                              sort: str) -> None:
    from caredesk.inbox import presenters

    monkeypatch.setattr(presenters, "PAGE_SIZE", 3)
    # Equal priorities and urgencies, so both orderings fall back to the newest first and then to the id.
    cases = [make_case(f"case {i}", minutes=i // 2, priority=2, urgency=0.5) for i in range(8)]
    expected = sorted(cases, key=lambda c: (c.last_inbound_at, c.pk), reverse=True)
    first = agent_client.get(f"/cases/?sort={sort}", headers=HX).content.decode()
    assert _row_ids(first) == [c.pk for c in expected[:3]]
    assert ">8</span> cases" in first and _pager_link(first, "prev") is None
    older = _pager_link(first, "next")
    assert older and "cursor=" in older and f"sort={sort}" in older
    second = agent_client.get(older, headers=HX).content.decode()
    assert _row_ids(second) == [c.pk for c in expected[3:6]]
    third_link = _pager_link(second, "next")
    assert third_link
    third = agent_client.get(third_link, headers=HX).content.decode()
    assert _row_ids(third) == [c.pk for c in expected[6:]] and _pager_link(third, "next") is None
    back = _pager_link(third, "prev")
    assert back
    assert _row_ids(agent_client.get(back, headers=HX).content.decode()) == [c.pk for c in expected[3:6]]
    # "newer" from the second page has less than a page above it: that is the first page, without a cursor
    top = agent_client.get(_pager_link(second, "prev") or "", headers=HX).content.decode()
    assert _row_ids(top) == [c.pk for c in expected[:3]] and _pager_link(top, "prev") is None


def test_a_bad_cursor_shows_the_first_page_and_says_so(agent_client: Client, make_case: MakeCase,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from caredesk.inbox import presenters

    monkeypatch.setattr(presenters, "PAGE_SIZE", 2)
    cases = [make_case(f"case {i}", minutes=i) for i in range(4)]
    first = agent_client.get("/cases/", headers=HX).content.decode()
    older = _pager_link(first, "next") or ""
    token = older.split("cursor=")[1].split("&")[0]
    tampered = older.replace(token, token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"))
    urgent_first = _row_ids(agent_client.get("/cases/?sort=urgent", headers=HX).content.decode())
    for path, rows in ((tampered, [cases[3].pk, cases[2].pk]), ("/cases/?cursor=nonsense", [cases[3].pk, cases[2].pk]),
                       (older + "&sort=urgent", urgent_first)):  # a cursor of the newest-first order
        response = agent_client.get(path, headers=HX)
        assert response.status_code == 200
        html = response.content.decode()
        assert _row_ids(html) == rows
        assert "That page link no longer fits this list" in html
    assert "no longer fits" not in agent_client.get(older, headers=HX).content.decode()


def test_large_counts_are_estimates_and_say_so(agent_client: Client, make_case: MakeCase,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from caredesk.cases import paging

    monkeypatch.setattr(paging, "EXACT_COUNT_LIMIT", 2)
    for i in range(4):
        make_case(f"case {i}", minutes=i)
    html = agent_client.get("/cases/", headers=HX).content.decode()
    assert re.search(r'id="count-all" hx-swap-oob="true">about [\d,]+<', html)
    assert 'title="an estimate' in html
    monkeypatch.setattr(paging, "EXACT_COUNT_LIMIT", 1000)
    html = agent_client.get("/cases/", headers=HX).content.decode()
    assert re.search(r'id="count-all" hx-swap-oob="true">4<', html) and ">4</span> cases" in html


# ---------------------------------------------------------------------------------------------------------------
# The case pane


def test_case_page_full_and_partial(agent_client: Client, case: Case) -> None:
    full = agent_client.get(f"/cases/{case.pk}/")
    assert full.status_code == 200
    html = full.content.decode()
    assert "<html" in html and 'id="case-list"' in html and f'data-case-id="{case.pk}"' in html
    partial = agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
    assert "<html" not in partial and f'data-case-id="{case.pk}"' in partial and 'id="reply-form"' in partial
    live = agent_client.get(f"/cases/{case.pk}/live", headers=HX).content.decode()
    assert 'id="case-live"' in live and 'id="reply-form"' not in live  # the reply box is never re-rendered
    assert agent_client.get("/cases/999999/", headers=HX).status_code == 404
    assert agent_client.get("/cases/999999/").status_code == 404  # the whole page reads the case itself


def test_case_view_shows_thread_author_earlier_cases_and_labels(
    agent_client: Client, installation: Any, agent: User
) -> None:
    first = make_post("my modem died last month", author_id="u-77", handle="maria_sf")
    ingest(installation, first)
    earlier = Post.objects.get(external_id=first.external_id).case
    assert earlier is not None
    Case.objects.filter(pk=earlier.pk).update(status="resolved")
    report = ingest(installation, make_post("internet down in 94110 again", author_id="u-77", handle="maria_sf"))
    post = Post.objects.get(pk=report.post_ids[0])
    case = post.case
    assert case is not None and case.pk != earlier.pk
    ingest(installation, make_post("any update? still down", author_id="u-77", handle="maria_sf",
                                   in_reply_to=post.external_id))
    Author.objects.filter(external_id="u-77").update(name="María Elena Ruiz", followers=1840, verified=True)
    html = agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
    # Thread in time order.
    assert html.index("internet down in 94110 again") < html.index("any update? still down")
    # Author card.
    assert "María Elena Ruiz" in html and "@maria_sf" in html and "1.8k" in html and "verified account" in html
    # Earlier case, linked.
    assert f'href="/cases/{earlier.pk}/"' in html and "my modem died last month" in html
    # Triage labels of the post with score and reasons.
    triage = post.triage
    topic = triage["topic"]
    assert f'{topic["value"]} <small>{round(topic["score"] * 100)}%</small>' in html
    assert f'topic: {topic["value"]} ({topic["score"]:.2f})' in html
    assert topic["reasons"], "triage gives reasons"
    for reason in topic["reasons"]:
        assert f'<span class="reason">{escape(str(reason))}</span>' in html
    assert "why?" in html


def test_pii_is_masked_with_a_warning(agent_client: Client, make_case: MakeCase) -> None:
    text = "my account number is 4417 1234 5678 and my internet is down"
    case = make_case(text)
    post = case.posts.get()
    post.triage = {**post.triage, "pii": [{"kind": "account_number", "start": 21, "end": 35}]}
    post.save(update_fields=["triage"])
    html = agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
    assert "4417 1234 5678" not in html.split('id="thread"')[1].split('class="case-side"')[0]
    assert "contains account number — suggest moving to DM" in html
    assert "78]" in html  # the last two digits stay visible


def test_masking_helpers() -> None:
    text = "call me at 555-0123 or mail a@b.example"
    masked, kinds = mask_for_display(text, {"pii": [{"kind": "phone", "start": 11, "end": 19},
                                                    {"kind": "email", "start": 28, "end": 39},
                                                    {"kind": "bogus", "start": 5, "end": 500}]})
    assert "555-0123" not in masked and "a@b.example" not in masked
    assert masked.startswith("call me at [phone") and kinds == ["email", "phone"]
    assert mask_for_display(text, {}) == (text, [])
    assert pii_warning(["account_number", "phone"]) == (
        "contains account number and phone number — suggest moving to DM"
    )
    chips = triage_chips({"topic": {"value": "billing", "score": 0.82, "reasons": ["keyword: bill"]},
                          "spam": {"value": False, "score": 0.9, "reasons": []},
                          "urgency": {"value": 0.75, "score": 0.6, "reasons": ["repeat contact"]}})
    assert [(c.name, c.value, c.tone) for c in chips] == [("topic", "billing", "neutral"),
                                                           ("urgency", "urgency 0.75", "bad")]


def test_canned_replies_brand_specific_and_global(agent_client: Client, case: Case, can_i_help: Any) -> None:
    from caredesk.inbox.models import CannedReply

    CannedReply.objects.create(brand=case.brand, title="Nimbus outage map", text="See status.nimbus.example")
    CannedReply.objects.create(brand=make_brand("Other"), title="Other brand only", text="nope")
    html = agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
    assert ">Can I help?</option>" in html and ">Nimbus outage map</option>" in html
    assert "Other brand only" not in html
    assert 'id="canned-replies" type="application/json"' in html
    assert 'name="idempotency_key"' in html
    assert 'data-platform="x"' in html and 'data-limit="280"' in html


def test_case_pane_query_count_does_not_grow_with_the_thread(
    agent_client: Client, case: Case, agent: User, django_assert_num_queries: Any
) -> None:
    from django.db import transaction
    from django.utils import timezone

    from caredesk.cases.actions import do_add_note, do_assign_case
    from caredesk.outbox.actions import do_queue_reply

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert agent_client.get(f"/cases/{case.pk}/", headers=HX).status_code == 200
        return len(ctx.captured_queries)

    def grow(n: int) -> None:
        first = case.posts.get(direction="inbound", in_reply_to_external_id="")
        for i in range(n):
            ingest(first.installation, make_post(f"follow-up {i}", author_id="u1", handle="casey",
                                                 in_reply_to=first.external_id))
            with transaction.atomic():
                do_add_note(case, agent, f"note {i}", timezone.now())
                do_queue_reply(case, first, f"answer {i}", agent, timezone.now())
                do_assign_case(case, agent if i % 2 else None, agent, timezone.now())

    grow(1)
    small = count()
    grow(8)
    assert count() == small
    # session, user, memberships, the case; timeline, posts, replies, notes, other identities, earlier cases,
    # presence, agents, topics; the composer's latest post and canned replies
    with django_assert_num_queries(15):
        agent_client.get(f"/cases/{case.pk}/", headers=HX)
    # the whole page: the case (read once, after the stream's position) and the inbox beside it
    with django_assert_num_queries(15 + INBOX_QUERIES - 3):
        agent_client.get(f"/cases/{case.pk}/")


def test_a_long_thread_shows_its_latest_entries_and_offers_the_earlier(
    agent_client: Client, case: Case, agent: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from django.db import transaction

    from caredesk.cases.actions import do_add_note
    from caredesk.inbox import presenters

    monkeypatch.setattr(presenters, "THREAD_LENGTH", 4)
    first = case.posts.get(direction="inbound", in_reply_to_external_id="")
    for i in range(5):
        at = first.created_at + timedelta(minutes=2 * i + 1)
        ingest(first.installation, make_post(f"follow-up number {i}", author_id="u1", handle="casey",
                                             in_reply_to=first.external_id, created_at=at))
        with transaction.atomic():
            do_add_note(case, agent, f"note number {i}", at + timedelta(minutes=1))
    html = agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
    shown = re.findall(r"(follow-up|note) number (\d)", html)
    assert shown == [("follow-up", "3"), ("note", "3"), ("follow-up", "4"), ("note", "4")]
    assert "Show the earlier ones" in html and f'id="post-{first.pk}"' not in html
    whole = agent_client.get(f"/cases/{case.pk}/?thread=all", headers=HX).content.decode()
    assert len(re.findall(r"(follow-up|note) number (\d)", whole)) == 10 and f'id="post-{first.pk}"' in whole
    assert "Show the earlier ones" not in whole and "/live?thread=all" in whole
    # a short thread offers nothing
    monkeypatch.setattr(presenters, "THREAD_LENGTH", 200)
    assert "Show the earlier ones" not in agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()


def test_topics_in_use_are_listed_from_the_index(make_case: MakeCase) -> None:
    assert topics_in_use(None) == []
    first = make_case("charged twice", topic="billing")
    make_case("no signal", topic="outage")
    make_case("again charged", topic="billing")
    make_case("hello", topic="")
    make_case("lounge was shut", topic="zz-lounge")  # any key the API accepted
    assert topics_in_use(None) == ["billing", "outage", "zz-lounge"]
    assert topics_in_use(frozenset({first.brand_id})) == ["billing", "outage", "zz-lounge"]
    assert topics_in_use(frozenset()) == []
    offered = get_topics(None)
    assert "zz-lounge" in offered and "cancellation" in offered and "" not in offered
    assert offered == sorted(offered)


def test_one_brands_own_topics_are_not_offered_to_another_brands_people(make_case: MakeCase) -> None:
    acme = make_brand("Acme")
    make_case("the merger is off", topic="project-falcon", installation_=make_installation(acme))
    nimbus_case = make_case("no signal", topic="outage")
    assert "project-falcon" not in get_topics(frozenset({nimbus_case.brand_id}))
    assert "project-falcon" in get_topics(frozenset({acme.pk}))
    agent = make_user("nimbus-only", brands=[nimbus_case.brand])
    client = Client()
    client.force_login(agent)
    assert "project-falcon" not in client.get("/").content.decode()
    assert "project-falcon" not in client.get(f"/cases/{nimbus_case.pk}/").content.decode()


@pytest.mark.parametrize("value", [0.0, 0.005, 0.125, 0.335, 0.5, 0.994999, 0.995, 1.0, 0.1 + 0.2, 1 / 3, 12.345])
def test_two_places_is_floatformat_2(value: float) -> None:
    from django.template.defaultfilters import floatformat

    from caredesk.inbox.templatetags.inbox_tags import two_places

    assert two_places(value) == floatformat(value, 2)
