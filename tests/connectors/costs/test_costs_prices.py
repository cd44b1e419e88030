"""The price model, pure: X's prices, the daily de-duplication within a UTC day, the forecast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from caredesk.connectors.costs.ledger import forecast
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, Meter, Operation, PriceTable, UsageEvent

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_post_read_twice_in_one_utc_day_is_billed_once():
    meter = Meter(DEFAULT_X_PRICES)
    first = meter.bill([UsageEvent(Operation.POST_READ, NOON, ("1", "2", "3"))])
    again = meter.bill([UsageEvent(Operation.POST_READ, NOON + timedelta(hours=11, minutes=59), ("2", "3", "4"))])
    assert [(x.billed, x.deduped, x.cost) for x in first] == [(3, 0, Decimal("0.015"))]
    assert [(x.billed, x.deduped, x.cost) for x in again] == [(1, 2, Decimal("0.005"))]


def test_the_same_read_on_the_next_utc_day_is_billed_again():
    meter = Meter(DEFAULT_X_PRICES)
    meter.bill([UsageEvent(Operation.POST_READ, datetime(2026, 11, 23, 23, 59, tzinfo=UTC), ("1",))])
    # 00:30 in UTC+2 is still 22:30 UTC of the same day: billed by the UTC day, not the local one.
    local = datetime(2026, 11, 24, 0, 30, tzinfo=UTC).astimezone(UTC) - timedelta(hours=2)
    same_day = meter.bill([UsageEvent(Operation.POST_READ, local, ("1",))])
    next_day = meter.bill([UsageEvent(Operation.POST_READ, datetime(2026, 11, 24, 0, 0, tzinfo=UTC), ("1",))])
    assert (same_day[0].billed, same_day[0].deduped) == (0, 1)
    assert (next_day[0].billed, next_day[0].cost) == (1, Decimal("0.005"))


def test_creates_are_never_deduplicated_and_a_post_with_a_url_costs_more():
    meter = Meter(DEFAULT_X_PRICES)
    lines = meter.bill([
        UsageEvent(Operation.POST_CREATE, NOON, ("r1",)),
        UsageEvent(Operation.POST_CREATE, NOON, ("r1",)),
        UsageEvent(Operation.POST_CREATE_URL, NOON, units=1),
        UsageEvent(Operation.SUMMONED_REPLY, NOON, units=3),
    ])
    costs = {x.operation: (x.billed, x.cost) for x in lines}
    assert costs[Operation.POST_CREATE] == (2, Decimal("0.030"))
    assert costs[Operation.POST_CREATE_URL] == (1, Decimal("0.20"))
    assert costs[Operation.SUMMONED_REPLY] == (3, Decimal("0.030"))
    assert DEFAULT_X_PRICES.price(Operation.POST_CREATE_URL) > 10 * DEFAULT_X_PRICES.price(Operation.POST_CREATE)


def test_owned_reads_are_priced_apart_from_other_reads_and_deduplicated_separately():
    meter = Meter(DEFAULT_X_PRICES)
    lines = meter.bill([UsageEvent(Operation.OWNED_READ, NOON, ("1", "2")), UsageEvent(Operation.POST_READ, NOON,
                                                                                          ("1",))])
    assert {x.operation: x.cost for x in lines} == {Operation.OWNED_READ: Decimal("0.002"),
                                                    Operation.POST_READ: Decimal("0.005")}


def test_an_installation_may_override_a_price_and_bad_prices_are_refused():
    table = DEFAULT_X_PRICES.with_overrides({"post_read": "0.004"})
    assert table.price(Operation.POST_READ) == Decimal("0.004")
    assert table.price(Operation.USER_READ) == Decimal("0.010")
    with pytest.raises(ValueError):
        DEFAULT_X_PRICES.with_overrides({"post_reed": "0.004"})
    with pytest.raises(ValueError):
        PriceTable.model_validate({"prices": {"post_read": "a lot"}})
    with pytest.raises(ValueError):
        UsageEvent(Operation.POST_READ, datetime(2026, 11, 23), ("1",))  # noqa: DTZ001 (naive on purpose)


def test_the_forecast_is_linear_from_the_month_so_far():
    # Ten days of a thirty-day month cost $10: the month will cost $30.
    assert forecast(Decimal("10"), datetime(2026, 11, 11, 0, 0, tzinfo=UTC)) == Decimal("30.00")
    # A month just begun counts as an hour old, not as a few seconds (no fortune forecast at 00:00:05).
    assert forecast(Decimal("1"), datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC)) == Decimal("720.00")
    assert forecast(Decimal("0"), NOON) == Decimal("0.00")
