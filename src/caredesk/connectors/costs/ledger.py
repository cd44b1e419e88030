"""Writes and questions of the usage ledger: record a batch's usage, cost today / this month / forecast, and
whether the budget still allows a call.

Reads stop once the month's cost plus the next read would pass the *read budget* (budget minus the reply
reserve); replies may spend the reserve, up to the budget itself. A poll that is allowed may still overshoot the
read budget by what that one poll costs (its size is only known afterwards).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from caredesk.connectors.actions import _first_error
from caredesk.connectors.base import ConnectorError
from caredesk.connectors.costs.models import UsageEntry, UsageSeen
from caredesk.connectors.costs.prices import (
    MAX_BUDGET,
    MAX_PRICE,
    POST_READS,
    PRICE_PLACES,
    READS,
    Meter,
    Operation,
    PriceTable,
    UsageEvent,
    check_usd,
    utc_day,
)
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class


def price_table(installation: ConnectorInstallation) -> PriceTable | None:
    """The installation's prices: its provider's declared table with the installation's overrides; None when the
    provider declares none (a free platform)."""
    try:
        table = get_provider_class(installation.provider_key).prices
    except ConnectorError:
        return None
    if table is None:
        return None
    if not installation.price_overrides:
        return table
    try:
        return table.with_overrides(installation.price_overrides)
    except ValueError as exc:
        raise ConnectorError(f"this installation's own prices cannot be used: {_first_error(exc)}") from exc


def do_record_usage(
    installation: ConnectorInstallation, events: Sequence[UsageEvent], now: datetime
) -> list[UsageEntry]:
    """Price ``events`` and add them to the ledger (one row per day and operation). Precondition for reads:
    inside a transaction holding the installation row lock (as a batch's processing does), so the day's seen
    reads are this installation's alone meanwhile; writes (replies) need no lock."""
    table = price_table(installation)
    if table is None or not events:
        return []
    today = utc_day(now)
    UsageSeen.objects.filter(installation=installation, day__lt=today - timedelta(days=1)).delete()
    read_ids = {(e.day, e.operation.value, rid) for e in events if Operation(e.operation) in READS
                for rid in e.resource_ids}
    seen: set[tuple[date, str, str]] = set()
    if read_ids and table.daily_dedupe:
        seen = set(
            UsageSeen.objects.filter(installation=installation, day__in={d for d, _, _ in read_ids},
                                     resource_id__in={r for _, _, r in read_ids})
            .values_list("day", "operation", "resource_id")
        ) & read_ids
    meter = Meter(table, set(seen))
    lines = meter.bill(events)
    if table.daily_dedupe:
        UsageSeen.objects.bulk_create(
            [UsageSeen(installation=installation, day=d, operation=op, resource_id=rid[:100])
             for d, op, rid in meter.seen - seen],
            ignore_conflicts=True,
        )
    for line in lines:
        _upsert(installation.pk, line.day, line.operation.value, line.billed, line.deduped, line.cost)
    return list(
        UsageEntry.objects.filter(installation=installation, day__in={x.day for x in lines},
                                  operation__in={x.operation.value for x in lines}).order_by("day", "operation")
    )


_UPSERT = (
    "INSERT INTO connectors_usageentry (installation_id, day, operation, units_billed, units_deduped, cost)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (installation_id, day, operation) DO UPDATE SET"
    " units_billed = connectors_usageentry.units_billed + EXCLUDED.units_billed,"
    " units_deduped = connectors_usageentry.units_deduped + EXCLUDED.units_deduped,"
    " cost = connectors_usageentry.cost + EXCLUDED.cost"
)


def _upsert(installation_id: int, day: date, operation: str, billed: int, deduped: int, cost: Decimal) -> None:
    # One statement: two transactions adding to the same day's row (a reply sent while another is) never race
    # into the unique constraint, and neither needs the installation row lock for it.
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, [installation_id, day, operation, billed, deduped, cost])


def _check_usd(value: Decimal, what: str, *, places: int = 2, maximum: Decimal = MAX_BUDGET) -> None:
    try:
        check_usd(value, what, places=places, maximum=maximum)
    except ValueError as exc:
        raise ConnectorError(str(exc)) from None


def do_set_budget(
    installation: ConnectorInstallation, monthly_budget: Decimal | None, reply_reserve: Decimal = Decimal(0)
) -> None:
    """The monthly budget (None: none) and the part of it kept for replies. A running stream stopped at the old
    budget notices within ``BUDGET_CHECK_SECONDS`` and connects again; the next poll asks the platform again."""
    if monthly_budget is not None and monthly_budget < 0 or reply_reserve < 0:
        raise ConnectorError("a budget and its reply reserve cannot be negative")
    if monthly_budget is not None:
        _check_usd(monthly_budget, "the monthly budget")
    _check_usd(reply_reserve, "the reply reserve")
    if monthly_budget is not None and reply_reserve > monthly_budget:
        raise ConnectorError("the reply reserve cannot be larger than the monthly budget")
    if monthly_budget is None and reply_reserve > 0:
        raise ConnectorError("a reply reserve needs a monthly budget")
    installation.monthly_budget = monthly_budget
    installation.reply_reserve = reply_reserve
    installation.save(update_fields=["monthly_budget", "reply_reserve"])


def do_set_prices(installation: ConnectorInstallation, prices: Mapping[str, Decimal | None]) -> dict[str, str]:
    """Change this installation's own prices (USD per unit) over its provider's declared ones; None puts an
    operation back to the provider's price. Returns the overrides now stored. Refused (:class:`ConnectorError`,
    nothing changed) for a provider without prices, an unknown operation or an unusable amount."""
    try:
        table = get_provider_class(installation.provider_key).prices
    except ConnectorError:
        table = None
    if table is None:
        raise ConnectorError(f"{installation.provider_key} declares no prices: there is nothing to override")
    known = {o.value for o in Operation}
    overrides = {str(k): str(v) for k, v in (installation.price_overrides or {}).items() if k in known}
    for operation, price in prices.items():
        if operation not in known:
            raise ConnectorError(f"unknown operation {operation!r}; the operations are {', '.join(sorted(known))}")
        if price is None:
            overrides.pop(operation, None)
            continue
        _check_usd(price, f"the price of {operation}", places=PRICE_PLACES, maximum=MAX_PRICE)
        overrides[operation] = str(price)
    try:
        table.with_overrides(overrides)
    except ValueError as exc:
        raise ConnectorError(f"these prices cannot be used: {_first_error(exc)}") from exc
    installation.price_overrides = overrides
    installation.save(update_fields=["price_overrides"])
    return overrides


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True, slots=True)
class CostSummary:
    today: Decimal
    month: Decimal
    forecast_month: Decimal
    post_reads_month: int
    reads_deduped_month: int


def forecast(month_to_date: Decimal, now: datetime) -> Decimal:
    """The month's cost if it goes on as it went: linear from the month so far (at least one hour of it, so a
    few minutes into a month do not forecast a fortune)."""
    start, end = month_start(now), next_month_start(now)
    elapsed = max((now - start).total_seconds(), 3600.0)
    total = (end - start).total_seconds()
    return (month_to_date * Decimal(total) / Decimal(elapsed)).quantize(Decimal("0.01"))


def cost_summaries(installation_ids: Iterable[int], now: datetime) -> dict[int, CostSummary]:
    """Cost today, this month and the month's forecast of many installations, in one query."""
    ids = list(installation_ids)
    today, first = utc_day(now), month_start(now).date()
    acc: dict[int, list[Decimal | int]] = {i: [Decimal(0), Decimal(0), 0, 0] for i in ids}
    for iid, day, op, cost, billed, deduped in (
        UsageEntry.objects.filter(installation_id__in=ids, day__gte=first, day__lte=today)
        .values_list("installation_id", "day", "operation")
        .annotate(c=Sum("cost"), b=Sum("units_billed"), d=Sum("units_deduped"))
        .values_list("installation_id", "day", "operation", "c", "b", "d")
        .order_by()
    ):
        row = acc[iid]
        row[1] += cost
        if day == today:
            row[0] += cost
        if op in {o.value for o in POST_READS}:
            row[2] += billed
        row[3] += deduped
    return {
        i: CostSummary(Decimal(r[0]), Decimal(r[1]), forecast(Decimal(r[1]), now), int(r[2]), int(r[3]))
        for i, r in acc.items()
    }


def cost_summary(installation: ConnectorInstallation, now: datetime) -> CostSummary:
    return cost_summaries([installation.pk], now)[installation.pk]


def budget_left(installation: ConnectorInstallation, now: datetime) -> Decimal | None:
    if installation.monthly_budget is None:
        return None
    return installation.monthly_budget - cost_summary(installation, now).month


def budget_stop(
    installation: ConnectorInstallation, operation: Operation, now: datetime, summary: CostSummary | None = None
) -> str | None:
    """Why the budget (or the platform's monthly read cap) forbids ``operation`` now; None when it allows it."""
    table = price_table(installation)
    if table is None:
        return None
    summary = summary or cost_summary(installation, now)
    until = next_month_start(now).date().isoformat()
    if (operation in POST_READS and table.monthly_post_read_cap is not None
            and summary.post_reads_month >= table.monthly_post_read_cap):
        return (f"the platform's monthly cap of {table.monthly_post_read_cap:,} post reads is reached: "
                f"reads stopped until {until}")
    budget = installation.monthly_budget
    if budget is None:
        return None
    limit = budget - installation.reply_reserve if operation in READS else budget
    if summary.month + table.price(operation) > limit:
        if operation in READS:
            return f"monthly budget of ${budget} reached: reads stopped until {until}"
        return f"monthly budget of ${budget} reached: replies stopped until {until}"
    return None


def budget_allows(installation: ConnectorInstallation, operation: Operation, now: datetime) -> bool:
    return budget_stop(installation, operation, now) is None


def do_record_budget_stop(installation: ConnectorInstallation, message: str, now: datetime, *,
                          polled: bool = True) -> None:
    """A poll was skipped, or a stream not connected or closed, for the budget: shown in health (degraded, the
    reason as its last error), not counted as a failure (nothing is wrong with the platform); for a poll
    (``polled``) the poll interval still applies."""
    installation.health = ConnectorInstallation.Health.DEGRADED
    installation.last_error = message
    fields = ["health", "last_error"]
    if polled:
        installation.last_polled_at = now
        fields.append("last_polled_at")
    installation.save(update_fields=fields)
