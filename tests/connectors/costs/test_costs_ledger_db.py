"""The usage ledger and the monthly budget, through real polls of a platform double that charges per call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from costs_platform import PaidPlatform

from caredesk.cases.models import Post
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.costs.ledger import (
    budget_allows,
    budget_left,
    cost_summary,
    do_record_usage,
    do_set_budget,
)
from caredesk.connectors.costs.models import UsageEntry
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.health import connector_health
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.tasks import poll_installation
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _installation(platform: PaidPlatform, **config: object) -> ConnectorInstallation:
    return do_create_installation(make_brand(), "test_paid", "X (paid)", {"url": platform.url, **config},
                                  own_account_ids=["brand-nimbus"], own_handles=["NimbusCare"])


def _poll(installation: ConnectorInstallation, at: datetime) -> int | None:
    import httpx

    with httpx.Client(timeout=5) as http:
        return poll_installation(installation.pk, at, http)


def test_a_poll_records_its_usage_in_one_row_per_day_and_operation(paid_platform):
    installation = _installation(paid_platform, since_id=False)  # every poll re-reads the newest page
    paid_platform.post(10)
    assert _poll(installation, T0) == 10
    paid_platform.post(3)
    _poll(installation, T0 + timedelta(minutes=5))  # 3 new, 7 read again today: those are free
    rows = list(UsageEntry.objects.filter(installation=installation).values_list(
        "day", "operation", "units_billed", "units_deduped", "cost"))
    assert rows == [(T0.date(), "owned_read", 13, 7, Decimal("0.013000"))]
    # The next UTC day the same page is billed again: the platform forgets its de-duplication at midnight.
    _poll(installation, T0 + timedelta(days=1))
    assert UsageEntry.objects.get(installation=installation, day=(T0 + timedelta(days=1)).date()).units_billed == 10
    assert Post.objects.filter(installation=installation).count() == 13
    summary = cost_summary(installation, T0 + timedelta(days=1))
    assert summary.today == Decimal("0.01") and summary.month == Decimal("0.023")
    assert summary.reads_deduped_month == 7


def test_an_installation_is_billed_at_its_own_prices_and_unusable_prices_stop_it_clearly(paid_platform):
    installation = _installation(paid_platform)
    paid_platform.post(2)
    ConnectorInstallation.objects.filter(pk=installation.pk).update(price_overrides={"owned_read": "0.5"})
    _poll(installation, T0)
    assert UsageEntry.objects.get(installation=installation).cost == Decimal("1.000000")  # its own price
    # Prices the installation cannot use: a clear failure before the platform is called, nothing read unbilled.
    ConnectorInstallation.objects.filter(pk=installation.pk).update(price_overrides={"owned_read": "free"})
    paid_platform.post(1)
    assert _poll(installation, T0 + timedelta(minutes=5)) == 0
    installation.refresh_from_db()
    assert installation.health == "degraded"
    assert installation.last_error.startswith("this installation's own prices cannot be used: prices.owned_read")
    assert paid_platform.requests.count("/2/users/brand-nimbus/mentions") == 1
    assert Post.objects.filter(installation=installation).count() == 2
    assert UsageEntry.objects.get(installation=installation).units_billed == 2


def test_the_budget_stops_reads_before_it_is_exceeded_and_says_so(paid_platform):
    installation = _installation(paid_platform)
    do_set_budget(installation, Decimal("0.05"), reply_reserve=Decimal("0.02"))  # $0.03 for reads
    at = T0
    for _ in range(6):
        paid_platform.post(10)  # ten new mentions a poll: $0.01 of owned reads
        _poll(installation, at)
        at += timedelta(minutes=5)
    summary = cost_summary(installation, at)
    assert summary.month == Decimal("0.03")  # three polls: the fourth would have passed the read budget
    assert paid_platform.requests.count("/2/users/brand-nimbus/mentions") == 3
    installation.refresh_from_db()
    assert installation.last_error == "monthly budget of $0.05 reached: reads stopped until 2026-12-01"
    assert installation.health == "degraded" and installation.consecutive_failures == 0
    assert not budget_allows(installation, Operation.POST_READ, at)
    # Answering keeps its reserve: replies may still be sent, until the budget itself would be passed.
    assert budget_allows(installation, Operation.SUMMONED_REPLY, at)
    do_record_usage(installation, [UsageEvent(Operation.SUMMONED_REPLY, at, units=2)], at)
    assert budget_left(installation, at) == Decimal("0")
    assert not budget_allows(installation, Operation.SUMMONED_REPLY, at)
    # A new month: reads start again by themselves, and the installation is healthy after its next poll.
    _poll(installation, datetime(2026, 12, 1, 0, 1, tzinfo=UTC))
    installation.refresh_from_db()
    assert installation.health == "ok" and installation.last_error == ""
    assert Post.objects.filter(installation=installation).count() == 40  # the stopped posts came after all


def test_polls_stop_at_the_budget_and_start_again_once_it_is_raised(paid_platform):
    installation = _installation(paid_platform)
    do_set_budget(installation, Decimal("0.01"))
    paid_platform.post(10)  # $0.01 of owned reads
    _poll(installation, T0)
    paid_platform.post(5)
    assert _poll(installation, T0 + timedelta(minutes=5)) == 0
    assert paid_platform.requests.count("/2/users/brand-nimbus/mentions") == 1  # not asked past the budget
    assert connector_health(ConnectorInstallation.objects.get(pk=installation.pk), T0)["reads_stopped"]
    do_set_budget(installation, Decimal("0.50"))
    assert _poll(installation, T0 + timedelta(minutes=10)) == 5
    assert paid_platform.requests.count("/2/users/brand-nimbus/mentions") == 2


def test_health_shows_the_cost_and_the_budget(paid_platform):
    installation = _installation(paid_platform)
    paid_platform.post(10)
    _poll(installation, datetime(2026, 11, 11, 0, 0, tzinfo=UTC) - timedelta(hours=1))
    now = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
    health = connector_health(installation, now)
    assert (health["cost_today"], health["cost_month"], health["forecast_month"]) == ("0.00", "0.01", "0.03")
    assert health["budget"] is None and health["budget_left"] is None and health["reads_stopped"] is False
    do_set_budget(installation, Decimal("0.01"))
    health = connector_health(installation, now)
    assert (health["budget"], health["budget_left"], health["reads_stopped"]) == ("0.01", "0.00", True)
    assert health["reads_stopped_reason"].startswith("monthly budget of $0.01 reached")


def test_the_platforms_monthly_read_cap_stops_reads_too(paid_platform):
    installation = _installation(paid_platform)
    do_record_usage(installation, [UsageEvent(Operation.POST_READ, T0, units=3_000_000)], T0)
    assert not budget_allows(installation, Operation.POST_READ, T0)
    assert budget_allows(installation, Operation.SUMMONED_REPLY, T0)
    paid_platform.post(1)
    assert _poll(installation, T0) == 0 and paid_platform.requests == []
    installation.refresh_from_db()
    assert "monthly cap of 3,000,000 post reads" in installation.last_error


def test_a_budget_needs_sane_amounts(paid_platform):
    from caredesk.connectors.base import ConnectorError

    installation = _installation(paid_platform)
    with pytest.raises(ConnectorError):
        do_set_budget(installation, Decimal("1"), reply_reserve=Decimal("2"))
    with pytest.raises(ConnectorError):
        do_set_budget(installation, Decimal("-1"))
