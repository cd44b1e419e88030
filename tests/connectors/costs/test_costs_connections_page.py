"""The Connections page shows each connection's rung of the listening ladder, its cost and its budget, with a banner
once reads stopped; the edit page's budget form is for the brand's admins only, checked, and all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client

from caredesk.connectors.actions import do_create_installation, do_record_rung_refused, lock_installation
from caredesk.connectors.base import Rung
from caredesk.connectors.costs.ledger import do_record_usage, do_set_budget
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.models import ConnectorInstallation
from csp_markup import blocked
from factories import make_brand, make_user
from roles import make_people

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("name")</script>'


@pytest.fixture
def nimbus():
    return make_brand("Nimbus")


@pytest.fixture
def paid(nimbus) -> ConnectorInstallation:
    return do_create_installation(nimbus, "test_paid", f"X {HOSTILE}", {"url": "http://127.0.0.1:9"})


def _admin(brand) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(make_user("nadmin", role="admin", brands=[brand]))
    return client


def test_the_page_shows_the_rung_the_cost_and_a_banner_once_reads_stopped_escaping_what_it_shows(nimbus, paid):
    now = datetime.now(UTC)
    do_record_usage(paid, [UsageEvent(Operation.POST_READ, now, tuple(f"p{i}" for i in range(8)))], now)  # $0.04
    do_set_budget(paid, Decimal("0.04"))
    with transaction.atomic():
        do_record_rung_refused(lock_installation(paid.pk), Rung.POLL, "<img src=x onerror=alert(1)> no access", now)
    ConnectorInstallation.objects.filter(pk=paid.pk).update(last_error="<b>403</b> from X")
    html = _admin(nimbus).get("/settings/connections/").content.decode()
    assert "by import" in html and "nothing automatic works: import an export with caredesk ingest" in html
    assert "poll: refused by the platform (&lt;img src=x onerror=alert(1)&gt; no access) until " in html
    assert "<img" not in html and HOSTILE not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;403&lt;/b&gt; from X" in html
    assert "$0.04 today" in html and "$0.04 this month" in html and "forecast $" in html
    assert "$0.00 left" in html and "of $0.04" in html
    assert "Reads stopped for X &lt;script&gt;" in html
    assert "monthly budget of $0.04 reached: reads stopped until " in html
    assert blocked(html) == []


def test_a_connection_without_cost_or_budget_shows_none(nimbus):
    do_create_installation(nimbus, "replay", "free", {"brand": "nimbus", "platform": "x"})
    html = _admin(nimbus).get("/settings/connections/").content.decode()
    assert "by poll" in html and "budget-stopped" not in html and ">none<" in html


def test_an_admin_sets_the_budget_reserve_and_prices_from_the_edit_page(nimbus, paid):
    admin = _admin(nimbus)
    page = admin.get(f"/settings/connections/{paid.pk}/edit").content.decode()
    assert 'name="budget-monthly_budget"' in page and 'name="budget-price_post_read"' in page
    assert 'placeholder="0.005"' in page and "Listening by <b>poll</b>" in page and blocked(page) == []
    response = admin.post(f"/settings/connections/{paid.pk}/budget", {
        "budget-monthly_budget": "25", "budget-reply_reserve": "2.50", "budget-price_post_read": "0.004",
        "budget-price_user_read": ""})
    assert response.status_code == 302
    paid.refresh_from_db()
    assert (paid.monthly_budget, paid.reply_reserve) == (Decimal("25"), Decimal("2.50"))
    assert paid.price_overrides == {"post_read": "0.004"}
    page = admin.get(f"/settings/connections/{paid.pk}/edit").content.decode()
    assert 'value="25.00"' in page and 'value="0.004"' in page
    # Emptied: no budget, and the platform's price again.
    assert admin.post(f"/settings/connections/{paid.pk}/budget", {"budget-monthly_budget": "",
                                                                  "budget-price_post_read": ""}).status_code == 302
    paid.refresh_from_db()
    assert paid.monthly_budget is None and paid.reply_reserve == 0 and paid.price_overrides == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"budget-monthly_budget": "<b>lots</b>"},
         "the monthly budget: &#x27;&lt;b&gt;lots&lt;/b&gt;&#x27; is not an amount"),
        ({"budget-monthly_budget": "-3"}, "the monthly budget cannot be negative"),
        ({"budget-monthly_budget": "3.333"}, "the monthly budget: at most 2 decimals (cents)"),
        ({"budget-monthly_budget": "10", "budget-reply_reserve": "11"},
         "the reply reserve cannot be larger than the monthly budget"),
        ({"budget-monthly_budget": "", "budget-reply_reserve": "3"}, "a reply reserve needs a monthly budget"),
        ({"budget-monthly_budget": "10", "budget-price_post_read": "0.0000001"},
         "the price of post_read: at most 6 decimals"),
        ({"budget-monthly_budget": "10", "budget-price_post_read": "Infinity"},
         "the price of post_read: Infinity is not an amount in USD"),
    ],
)
def test_bad_amounts_are_refused_with_the_reason_and_change_nothing(nimbus, paid, data, message):
    response = _admin(nimbus).post(f"/settings/connections/{paid.pk}/budget", data)
    assert response.status_code == 422
    assert message in response.content.decode()
    paid.refresh_from_db()
    assert paid.monthly_budget is None and paid.price_overrides == {}


@pytest.mark.parametrize("role", ["supervisor", "agent", "volunteer", "outsider", "nobody"])
def test_only_the_brands_admins_may_set_a_budget(nimbus, paid, role):
    people = make_people(nimbus, make_brand("Acme"))
    client = Client()
    client.force_login(people[role])
    response = client.post(f"/settings/connections/{paid.pk}/budget", {"budget-monthly_budget": "1000"})
    assert response.status_code in (302, 404)  # not found, or sent to log in: never a change
    assert client.get(f"/settings/connections/{paid.pk}/edit").status_code in (302, 404)
    paid.refresh_from_db()
    assert paid.monthly_budget is None
    owner = Client()
    owner.force_login(people["owner"])
    assert owner.post(f"/settings/connections/{paid.pk}/budget", {"budget-monthly_budget": "7"}).status_code == 302


def test_the_budget_form_needs_its_csrf_token(nimbus, paid):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("nadmin", role="admin", brands=[nimbus]))
    assert client.post(f"/settings/connections/{paid.pk}/budget", {"budget-monthly_budget": "5"}).status_code == 403
    paid.refresh_from_db()
    assert paid.monthly_budget is None
