from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from caredesk.accounts.actions import do_set_membership
from caredesk.cases.models import Case
from factories import make_brand, make_installation, make_user

pytestmark = pytest.mark.django_db

MakeCase = Callable[..., Case]


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_list_shape(api: Client, make_case: MakeCase) -> None:
    case = make_case("my bill is wrong, charged twice", topic="billing", priority=3)
    body = api.get("/api/cases").json()
    assert body["count"] == 1
    assert body["next_offset"] is None
    item = body["items"][0]
    assert item["id"] == case.pk
    assert item["brand"] == case.brand.slug
    assert item["subject"] == "my bill is wrong, charged twice"
    assert item["status"] == case.status
    assert (item["priority"], item["priority_label"], item["topic"]) == (3, "high", "billing")
    assert item["assignee"] is None
    assert item["customer"]["id"] == case.customer_id
    assert item["customer"]["display_name"] == case.customer.display_name
    for field in ("created_at", "updated_at", "last_inbound_at"):
        assert item[field].endswith("Z"), item[field]  # ISO 8601, UTC
    assert item["last_inbound_at"].startswith("2026-11-23T12:00")
    assert item["resolved_at"] is None


def test_status_filter_takes_several_values(api: Client, make_case: MakeCase) -> None:
    new = make_case(status="new")
    pending = make_case(status="pending")
    resolved = make_case(status="resolved")
    assert set(ids(api.get("/api/cases?status=new&status=pending"))) == {new.pk, pending.pk}
    assert set(ids(api.get("/api/cases?status=new,resolved"))) == {new.pk, resolved.pk}
    assert ids(api.get("/api/cases?status=resolved")) == [resolved.pk]
    assert len(ids(api.get("/api/cases"))) == 3


def test_unknown_status_is_422_with_the_choices(api: Client) -> None:
    response = api.get("/api/cases?status=closed")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "status" in detail and "resolved" in detail


def test_topic_priority_needs_reply_and_text_filters(api: Client, make_case: MakeCase) -> None:
    billing = make_case("I was charged twice on my bill", topic="billing", priority=2, needs_reply=True)
    outage = make_case("outage in my area again", topic="outage", priority=4, needs_reply=True)
    thanks = make_case("thanks for fixing it so fast", topic="praise", priority=1, needs_reply=False)
    assert ids(api.get("/api/cases?topic=billing")) == [billing.pk]
    assert set(ids(api.get("/api/cases?priority=2"))) == {billing.pk, outage.pk}
    assert ids(api.get("/api/cases?priority=4")) == [outage.pk]
    assert ids(api.get("/api/cases?needs_reply=false")) == [thanks.pk]
    assert set(ids(api.get("/api/cases?needs_reply=true"))) == {billing.pk, outage.pk}
    assert ids(api.get("/api/cases?q=CHARGED")) == [billing.pk]
    assert ids(api.get("/api/cases?q=nothing-like-this")) == []
    assert api.get("/api/cases?priority=5").status_code == 422


def test_assignee_filter(api: Client, agent: User, make_case: MakeCase) -> None:
    other = make_user("bo")
    mine = make_case(assignee=agent)
    theirs = make_case(assignee=other)
    nobody = make_case()
    assert ids(api.get("/api/cases?assignee=me")) == [mine.pk]
    assert ids(api.get("/api/cases?assignee=bo")) == [theirs.pk]
    assert ids(api.get("/api/cases?assignee=none")) == [nobody.pk]
    assert ids(api.get("/api/cases?assignee=nobody-by-that-name")) == []


def test_brand_filter(api: Client, agent: User, make_case: MakeCase) -> None:
    acme = make_installation(make_brand("Acme"))
    do_set_membership(agent, acme.brand, "agent")
    nimbus_case = make_case()
    acme_case = make_case(installation_=acme)
    assert ids(api.get("/api/cases?brand=acme")) == [acme_case.pk]
    assert ids(api.get(f"/api/cases?brand={nimbus_case.brand.slug}")) == [nimbus_case.pk]


def test_ordering(api: Client, make_case: MakeCase) -> None:
    old_urgent = make_case(minutes=0, priority=4, urgency=0.9)
    newest_low = make_case(minutes=30, priority=1, urgency=0.1)
    middle_urgent_more = make_case(minutes=10, priority=4, urgency=0.95)
    middle_normal = make_case(minutes=20, priority=2, urgency=0.5)
    newest_first = [newest_low.pk, middle_normal.pk, middle_urgent_more.pk, old_urgent.pk]
    assert ids(api.get("/api/cases")) == newest_first
    assert ids(api.get("/api/cases?ordering=newest")) == ids(api.get("/api/cases"))
    assert ids(api.get("/api/cases?ordering=urgent")) == [
        middle_urgent_more.pk, old_urgent.pk, middle_normal.pk, newest_low.pk,
    ]
    assert api.get("/api/cases?ordering=oldest").status_code == 422


def test_pagination(api: Client, make_case: MakeCase) -> None:
    cases = [make_case(minutes=i) for i in range(5)]
    newest_first = [c.pk for c in reversed(cases)]
    first = api.get("/api/cases?limit=2").json()
    assert (first["count"], first["limit"], first["offset"], first["next_offset"]) == (5, 2, 0, 2)
    second = api.get("/api/cases?limit=2&offset=2").json()
    last = api.get("/api/cases?limit=2&offset=4").json()
    assert last["next_offset"] is None
    pages = [item["id"] for page in (first, second, last) for item in page["items"]]
    assert pages == newest_first
    assert api.get("/api/cases?limit=200").status_code == 200
    too_many = api.get("/api/cases?limit=201")
    assert too_many.status_code == 422
    assert "limit" in too_many.json()["detail"]
    assert api.get("/api/cases?offset=-1").status_code == 422
    assert api.get("/api/cases?limit=abc").status_code == 422


def _walk(api: Client, first: str) -> list[list[int]]:
    """Every page from ``first`` on, following ``next_cursor``."""
    pages, body = [], api.get(first).json()
    while True:
        pages.append([item["id"] for item in body["items"]])
        if body["next_cursor"] is None:
            return pages
        body = api.get(f"{first}&cursor={body['next_cursor']}").json()


@pytest.mark.parametrize("ordering", ["newest", "urgent"])
def test_cursor_pagination_walks_the_whole_list_once(api: Client, make_case: MakeCase, ordering: str) -> None:
    # Ties on every column but the id, so the id must break them for no case to be lost or repeated.
    cases = [make_case(minutes=i // 3, priority=2 + i % 2, urgency=0.5) for i in range(7)]
    expected = ids(api.get(f"/api/cases?ordering={ordering}&limit=200"))
    assert sorted(expected) == sorted(c.pk for c in cases)
    pages = _walk(api, f"/api/cases?ordering={ordering}&limit=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [pk for page in pages for pk in page] == expected
    # back from the last page: previous_cursor gives the page before it
    first = api.get(f"/api/cases?ordering={ordering}&limit=3").json()
    assert first["previous_cursor"] is None and first["next_offset"] == 3
    second = api.get(f"/api/cases?ordering={ordering}&limit=3&cursor={first['next_cursor']}").json()
    last = api.get(f"/api/cases?ordering={ordering}&limit=3&cursor={second['next_cursor']}").json()
    assert last["next_cursor"] is None
    assert ids(api.get(f"/api/cases?ordering={ordering}&limit=3&cursor={last['previous_cursor']}")) == pages[1]
    assert ids(api.get(f"/api/cases?ordering={ordering}&limit=3&cursor={second['previous_cursor']}")) == pages[0]


def test_cursor_never_leaves_the_users_brands(api: Client, agent: User, make_case: MakeCase) -> None:
    acme = make_installation(make_brand("Acme"))
    mine = [make_case(minutes=i * 2) for i in range(4)]
    theirs = [make_case(minutes=i * 2 + 1, installation_=acme) for i in range(4)]  # interleaved in time
    assert sorted(pk for page in _walk(api, "/api/cases?limit=2") for pk in page) == sorted(c.pk for c in mine)
    # a cursor made at an Acme case's position still pages only the agent's own brand
    from caredesk.cases.paging import encode_cursor

    token = encode_cursor(theirs[-1], "newest", "older")
    assert set(ids(api.get(f"/api/cases?cursor={token}"))) <= {c.pk for c in mine}


def test_bad_cursors_are_400_and_offset_is_capped(api: Client, make_case: MakeCase) -> None:
    for i in range(3):
        make_case(minutes=i)
    token = api.get("/api/cases?limit=1").json()["next_cursor"]
    tampered = token[:-2] + ("xx" if not token.endswith("xx") else "yy")
    for bad in (tampered, "nonsense", "a" * 400):
        response = api.get(f"/api/cases?cursor={bad}")
        assert response.status_code == 400, bad
        assert "cursor" in response.json()["detail"]
    other_order = api.get(f"/api/cases?ordering=urgent&cursor={token}")
    assert other_order.status_code == 400 and "newest" in other_order.json()["detail"]
    assert api.get(f"/api/cases?cursor={'a' * 401}").status_code == 422
    both = api.get(f"/api/cases?cursor={token}&offset=1")
    assert both.status_code == 422 and "cursor" in both.json()["detail"]
    assert api.get("/api/cases?offset=10000").status_code == 200
    too_deep = api.get("/api/cases?offset=10001")
    assert too_deep.status_code == 422 and "offset" in too_deep.json()["detail"]


def test_large_counts_are_flagged_as_estimates(api: Client, make_case: MakeCase,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from caredesk.cases import paging

    for i in range(4):
        make_case(minutes=i)
    exact = api.get("/api/cases").json()
    assert (exact["count"], exact["count_is_estimate"]) == (4, False)
    monkeypatch.setattr(paging, "EXACT_COUNT_LIMIT", 2)
    estimated = api.get("/api/cases").json()
    assert estimated["count_is_estimate"] is True and estimated["count"] >= 3
    assert len(estimated["items"]) == 4


def test_list_query_count_does_not_grow_with_the_page(
    api: Client, agent: User, make_case: MakeCase, django_assert_num_queries: Any
) -> None:
    make_case(assignee=agent)
    api.get("/api/cases")  # the token's last use is now recorded: later requests within the minute only read

    # token lookup, count, page (cases joined with brand, assignee and customer)
    with django_assert_num_queries(4):  # with the user's memberships
        small = api.get("/api/cases?status=new,open&ordering=urgent")
    assert len(small.json()["items"]) == 1

    acme = make_installation(make_brand("Acme"))
    do_set_membership(agent, acme.brand, "agent")
    for i in range(12):
        make_case(minutes=i, assignee=agent if i % 2 else None, installation_=acme if i % 3 else None)
    with django_assert_num_queries(4):  # with the user's memberships
        large = api.get("/api/cases?status=new,open&ordering=urgent")
    assert len(large.json()["items"]) == 13
