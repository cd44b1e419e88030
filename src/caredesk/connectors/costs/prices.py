"""What a platform charges per call, and the bill for a set of calls: pure, no database.

A provider whose platform charges per call declares ``prices`` (a :class:`PriceTable`) and reports what each fetch
cost as :class:`UsageEvent` values (``FetchResult.usage``). :class:`Meter` prices them the platform's way: a
*read* of a resource already billed in the same UTC day is free (X's daily de-duplication), creates are always
billed, and the platform's monthly cap on post reads is modelled by the table's ``monthly_post_read_cap``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field


class Operation(enum.StrEnum):
    POST_READ = "post_read"
    USER_READ = "user_read"
    DM_EVENT_READ = "dm_event_read"
    OWNED_READ = "owned_read"  # the app owner's own account, e.g. its mentions timeline
    POST_CREATE = "post_create"
    POST_CREATE_URL = "post_create_url"  # a post whose text holds a URL
    DM_CREATE = "dm_create"
    SUMMONED_REPLY = "summoned_reply"  # a reply to a post whose author addressed the account


# Reads are de-duplicated within a UTC day; creates never are (each one is a new thing on the platform).
READS = frozenset({Operation.POST_READ, Operation.USER_READ, Operation.DM_EVENT_READ, Operation.OWNED_READ})
WRITES = frozenset({Operation.POST_CREATE, Operation.POST_CREATE_URL, Operation.DM_CREATE, Operation.SUMMONED_REPLY})
# What counts toward the platform's monthly post-read cap.
POST_READS = frozenset({Operation.POST_READ, Operation.OWNED_READ})


class PriceTable(BaseModel):
    """USD per unit of each operation; an operation missing from ``prices`` is free."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = "USD"
    prices: dict[Operation, Decimal] = Field(default_factory=dict)
    daily_dedupe: bool = True
    monthly_post_read_cap: int | None = None

    def price(self, operation: Operation | str) -> Decimal:
        return self.prices.get(Operation(operation), Decimal(0))

    def with_overrides(self, overrides: Mapping[str, object]) -> PriceTable:
        """This table with an installation's own prices (``{"post_read": "0.004"}``) in place of the defaults."""
        merged = {**{k.value: v for k, v in self.prices.items()}, **{str(k): v for k, v in overrides.items()}}
        return PriceTable.model_validate({**self.model_dump(), "prices": merged})


# xdevplatform/docs x-api/getting-started/pricing.mdx (pay-per-use, as of 2026): see docs platforms.md, X section.
DEFAULT_X_PRICES = PriceTable(
    prices={
        Operation.POST_READ: Decimal("0.005"),
        Operation.USER_READ: Decimal("0.010"),
        Operation.DM_EVENT_READ: Decimal("0.010"),
        Operation.OWNED_READ: Decimal("0.001"),
        Operation.POST_CREATE: Decimal("0.015"),
        Operation.POST_CREATE_URL: Decimal("0.20"),
        Operation.DM_CREATE: Decimal("0.015"),
        Operation.SUMMONED_REPLY: Decimal("0.010"),
    },
    daily_dedupe=True,
    monthly_post_read_cap=3_000_000,
)


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One call's usage: ``operation`` on the resources it returned (post ids, user ids, DM event ids), at ``at``
    (UTC). ``units``: for a call without ids (a create), how many were made; else the number of ids counts."""

    operation: Operation
    at: datetime
    resource_ids: tuple[str, ...] = ()
    units: int | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("a usage event's time must be timezone-aware")
        if self.units is not None and self.units < 0:
            raise ValueError("usage units cannot be negative")

    @property
    def day(self) -> date:
        return utc_day(self.at)

    def count(self) -> int:
        return self.units if self.units is not None else len(self.resource_ids)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class BillLine:
    day: date
    operation: Operation
    billed: int
    deduped: int
    cost: Decimal


# What was billed already: (UTC day, operation, resource id).
Seen = set[tuple[date, str, str]]


class Meter:
    """Prices usage events with a :class:`PriceTable`. ``seen`` holds the reads billed earlier (same day): those
    are free again; the meter adds the ones it bills, so one meter over many batches bills each read once a day."""

    def __init__(self, table: PriceTable, seen: Seen | None = None) -> None:
        self.table = table
        self.seen: Seen = seen if seen is not None else set()

    def bill(self, events: Iterable[UsageEvent]) -> list[BillLine]:
        totals: dict[tuple[date, Operation], list[int]] = {}
        for event in events:
            op = Operation(event.operation)
            line = totals.setdefault((event.day, op), [0, 0])
            if op in READS and self.table.daily_dedupe and event.resource_ids and event.units is None:
                for rid in event.resource_ids:
                    key = (event.day, op.value, rid)
                    if key in self.seen:
                        line[1] += 1
                    else:
                        self.seen.add(key)
                        line[0] += 1
            else:
                line[0] += event.count()
        return [
            BillLine(day, op, billed, deduped, self.table.price(op) * billed)
            for (day, op), (billed, deduped) in sorted(totals.items())
        ]


# What the budget columns hold (12 digits, 2 decimals); a price has up to 6 decimals, as the ledger's cost.
MAX_BUDGET = Decimal("9999999999.99")
PRICE_PLACES = 6
MAX_PRICE = Decimal(1000)


def parse_usd(text: str, what: str, *, places: int = 2, maximum: Decimal = MAX_BUDGET) -> Decimal:
    """An amount in USD as typed ("50", "12.50", "$0.004"); a ValueError says what is wrong with it."""
    cleaned = text.strip().removeprefix("$").replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{what}: {text!r} is not an amount in USD (like 50 or 12.50)") from None
    check_usd(value, what, places=places, maximum=maximum)
    return value


def check_usd(value: Decimal, what: str, *, places: int = 2, maximum: Decimal = MAX_BUDGET) -> None:
    """Refuse (ValueError) an amount that is not finite, negative, finer than ``places`` decimals or too large."""
    if not value.is_finite():
        raise ValueError(f"{what}: {value} is not an amount in USD")
    if value < 0:
        raise ValueError(f"{what} cannot be negative")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise ValueError(f"{what}: at most {places} decimals" + (" (cents)" if places == 2 else ""))
    if value > maximum:
        raise ValueError(f"{what}: at most ${maximum:,}")


_URL = re.compile(r"https?://\S", re.IGNORECASE)


def reply_operation(text: str, *, direct: bool, summoned: bool) -> Operation:
    """What a reply is billed as on X: a DM, a post holding a URL (the dearest), a reply to a post whose author
    addressed the account, or a plain post. A URL is counted only with its scheme (a bare ``example.com`` that X
    would also link is not recognised: such a reply is under-priced, never refused)."""
    if direct:
        return Operation.DM_CREATE
    if _URL.search(text):
        return Operation.POST_CREATE_URL
    return Operation.SUMMONED_REPLY if summoned else Operation.POST_CREATE
