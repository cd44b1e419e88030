"""Keyset pagination and bounded counts for the case lists (the inbox and ``GET /api/cases``).

A page is found by where the previous one ended (the sort key of its last row), not by how many rows to skip:
``WHERE (sort key) < (last row's key) ORDER BY sort key LIMIT n`` walks the ordering's index from that point, so
page 9,000 costs what page 1 costs, where ``OFFSET`` reads and discards every row above it.

The position travels as an opaque cursor: the ordering, the direction and the key, signed with the site's secret
so that a hand-edited or truncated cursor is refused as :class:`BadCursor` (a clear error, never a 500) before any
value of it reaches SQL. A cursor is a position in an ordering, not in a filter: used with other filters it starts
at the same place of the same order, which is what "older than this" means anyway. Brand isolation does not depend
on it: the page is always taken from :func:`~caredesk.cases.access.visible_cases`.

Counts over a million rows are the other cost of a deep list. :func:`bounded_count` counts exactly up to a limit
(a ``LIMIT``-ed count reads at most that many index entries) and beyond it gives the planner's estimate, flagged
as one, so the page says "about 96,000" rather than reading every row on each view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.core import signing
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from caredesk.cases.models import Case

Direction = Literal["older", "newer"]

# The sort key of each ordering, every column descending (the order the lists show). All columns run the same
# way, so one row comparison selects "after this row" and the ordering's index answers it as an index condition.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "newest": ("last_inbound_at", "id"),
    "urgent": ("priority", "urgency", "last_inbound_at", "id"),
}

_SALT = "caredesk.cases.cursor"
MAX_CURSOR_LENGTH = 400

# Up to this many rows a count is exact (a LIMIT-ed count reads at most this many index entries); beyond it the
# count is the planner's estimate, labelled as one.
EXACT_COUNT_LIMIT = 1000


class BadCursor(ValueError):
    """The cursor was not made by us, was altered, or belongs to another ordering."""


@dataclass(frozen=True)
class Cursor:
    ordering: str
    direction: Direction
    key: tuple[Any, ...]


def _key_of(case: Case, ordering: str) -> tuple[Any, ...]:
    return tuple(getattr(case, column) for column in SORT_KEYS[ordering])


def encode_cursor(case: Case, ordering: str, direction: Direction) -> str:
    values: list[Any] = []
    for column, value in zip(SORT_KEYS[ordering], _key_of(case, ordering), strict=True):
        values.append(value.isoformat() if column == "last_inbound_at" else value)
    return signing.Signer(salt=_SALT).sign_object([ordering, direction, values], compress=False)


def _check_value(column: str, value: Any) -> Any:
    """The key value as its column's Python type; anything else is a bad cursor."""
    if column == "last_inbound_at":
        if not isinstance(value, str):
            raise BadCursor("cursor: bad time")
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise BadCursor("cursor: bad time") from None
        if at.tzinfo is None:
            raise BadCursor("cursor: time without a zone")
        return at
    if column == "urgency":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BadCursor("cursor: bad urgency")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise BadCursor(f"cursor: bad {column}")
    return value


def decode_cursor(token: str, ordering: str) -> Cursor:
    """The position ``token`` names in ``ordering``; :class:`BadCursor` if it is not one of ours for it."""
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise BadCursor("cursor: not a cursor")
    try:
        payload = signing.Signer(salt=_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise BadCursor("cursor: not a cursor of this list (altered, or from another site)") from None
    if not (isinstance(payload, list) and len(payload) == 3 and isinstance(payload[2], list)):
        raise BadCursor("cursor: not a cursor")
    cursor_ordering, direction, values = payload
    if cursor_ordering != ordering:
        raise BadCursor(f"cursor: made for the {cursor_ordering!r} ordering, not {ordering!r}")
    if direction not in ("older", "newer"):
        raise BadCursor("cursor: bad direction")
    columns = SORT_KEYS[ordering]
    if len(values) != len(columns):
        raise BadCursor("cursor: bad key")
    return Cursor(ordering, direction, tuple(_check_value(c, v) for c, v in zip(columns, values, strict=True)))


def _beyond(cases: QuerySet[Case], cursor: Cursor) -> QuerySet[Case]:
    """The rows after (older) or before (newer) the cursor's key, as one row comparison on the base table."""
    ops = connections[cases.db].ops
    table = ops.quote_name(Case._meta.db_table)
    columns = ", ".join(f"{table}.{ops.quote_name(c)}" for c in SORT_KEYS[cursor.ordering])
    marks = ", ".join(["%s"] * len(cursor.key))
    sign = "<" if cursor.direction == "older" else ">"
    # Column names are ours and the key values travel as parameters: nothing of the cursor is spliced in.
    comparison = RawSQL(f"({columns}) {sign} ({marks})", cursor.key, output_field=BooleanField())  # noqa: S611
    return cases.filter(comparison)


@dataclass
class KeysetPage:
    """One page of a list in its order, with the cursors of the pages around it (None: there is none)."""

    items: list[Case]
    older: str | None
    newer: str | None

    @property
    def is_first(self) -> bool:
        return self.newer is None


def keyset_page(cases: QuerySet[Case], ordering: str, limit: int, cursor: Cursor | None = None) -> KeysetPage:
    """A page of ``cases`` (already in ``ordering``'s order) starting after ``cursor``, or the first page.

    One query (two when a "newer" cursor finds less than a page before it: that is the first page, read again).
    """
    if cursor is not None and cursor.direction == "newer":
        before = list(_beyond(cases, cursor).reverse()[: limit + 1])
        if len(before) > limit:  # a whole page, and more above it
            items = list(reversed(before[:limit]))
            return KeysetPage(items, encode_cursor(items[-1], ordering, "older"),
                              encode_cursor(items[0], ordering, "newer"))
        cursor = None  # less than a page above: that is the first page (rows may have come or gone since)
    rows = list((_beyond(cases, cursor) if cursor is not None else cases)[: limit + 1])
    items = rows[:limit]
    older = encode_cursor(items[-1], ordering, "older") if len(rows) > limit else None
    newer = encode_cursor(items[0], ordering, "newer") if cursor is not None and items else None
    return KeysetPage(items, older, newer)


# ---------------------------------------------------------------------------------------------------------------
# Counts


@dataclass(frozen=True)
class Tally:
    """A count, and whether it is exact (else the planner's estimate, at least ``EXACT_COUNT_LIMIT + 1``)."""

    value: int
    exact: bool

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        return f"about {round_estimate(self.value):,}"


def round_estimate(value: int) -> int:
    """An estimate to two significant figures: it is not more precise than that."""
    if value < 100:
        return value
    step = 10 ** (len(str(value)) - 2)
    return int(round(value / step) * step)


def _sql(cases: QuerySet[Any]) -> tuple[str, Sequence[Any]]:
    sql, params = cases.query.get_compiler(using=cases.db).as_sql()
    return sql, tuple(params)


def planner_estimate(cases: QuerySet[Any]) -> int:
    """How many rows the planner expects ``cases`` to return: planning only, nothing is read."""
    sql, params = _sql(cases.order_by().values("pk"))
    with connections[cases.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def bounded_counts(named: Mapping[str, QuerySet[Any]], exact_up_to: int | None = None) -> dict[str, Tally]:
    """Each queryset's count: exact up to ``exact_up_to`` (default :data:`EXACT_COUNT_LIMIT`), else estimated. One
    query for all of them, plus one planning-only EXPLAIN per count over the limit."""
    if exact_up_to is None:
        exact_up_to = EXACT_COUNT_LIMIT
    if not named:
        return {}
    compiled: dict[str, tuple[str, Sequence[Any]] | None] = {}
    for name, cases in named.items():
        try:
            compiled[name] = _sql(cases.order_by().values("pk")[: exact_up_to + 1])
        except EmptyResultSet:  # a filter that can match nothing (no brand to see): nothing to ask the database
            compiled[name] = None
    # The same query under two names (the inbox's total is often its "all" queue) is counted once.
    distinct = [key for key in dict.fromkeys(compiled.values()) if key is not None]
    tallies: dict[tuple[str, Sequence[Any]] | None, Tally] = {None: Tally(0, True)}
    if distinct:
        params: list[Any] = []
        parts: list[str] = []
        for sql, part_params in distinct:
            parts.append(f"(SELECT count(*) FROM ({sql}) AS capped)")  # noqa: S608 - Django's compiled SQL
            params.extend(part_params)
        db = next(iter(named.values())).db
        with connections[db].cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(parts)}", params)
            row = cursor.fetchone()
        for key, capped in zip(distinct, row, strict=True):
            if capped <= exact_up_to:
                tallies[key] = Tally(int(capped), True)
            else:
                cases = named[next(name for name, k in compiled.items() if k == key)]
                tallies[key] = Tally(max(exact_up_to + 1, planner_estimate(cases)), False)
    return {name: tallies[key] for name, key in compiled.items()}


def bounded_count(cases: QuerySet[Any], exact_up_to: int | None = None) -> Tally:
    return bounded_counts({"n": cases}, exact_up_to)["n"]
