"""Monthly partitions of raw payloads, the append-only table of bulky platform deliveries.

``connectors_rawpayload`` is partitioned by RANGE on ``received_at`` (PostgreSQL declarative partitioning), one
partition a month (``connectors_rawpayload_y2026m12``) plus a DEFAULT partition, so an insert never fails for want of
a partition: a row outside every month made so far (a test's old timestamp, the worker not run for months) lands in
``<table>_default`` and is moved into its month when that month's partition is made.

A partitioned table's primary key must contain the partition key, so in the database the key is
``(id, received_at)``; the ids still come from the table's one identity sequence, so they stay unique and
increasing (``caredesk connector retry``'s payload ids). Django's model state keeps ``id`` as the primary key: every
query Django writes works unchanged, and each partition has its own copy of every index.

Partitions are made ahead by the worker (:func:`caredesk.retention.tasks.maintain_partitions`, daily) and by the
migration for the months its data covers. Months older than every brand's retention are dropped whole, and months
left empty are dropped (see :mod:`caredesk.retention.actions`).

Activities are *not* partitioned, measured: every query of them (a case's timeline, the stream) is by case or by
position, not by time, so each would visit every month's partition, and a request's new connection pays for
opening them all (docs/retention.md, docs/benchmarks.md). The conversion below is generic: ``PARTITIONED`` lists
what is partitioned.

Why our own ~150 lines rather than a library: django-postgres-extra's partitioning needs its own database backend
and model base class (a change to the whole project's settings and the model's ancestry), and pg_partman is an
extension this PostgreSQL does not have (nor do managed or embedded ones reliably). Monthly RANGE partitions need a
name scheme, CREATE ... PARTITION OF and a default partition: what follows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

# table -> its partition key. Only these tables are partitioned.
PARTITIONED: dict[str, str] = {"connectors_rawpayload": "received_at"}
MONTHS_AHEAD = 3  # partitions made this many months past the current one
# Making or dropping a partition takes an exclusive lock on the parent for milliseconds; queued behind a long
# query it would hold every reader and writer of the table behind it, so it waits no longer than this and the daily
# job tries again the next day (the months made ahead leave ample time).
LOCK_TIMEOUT = "1s"
_NAME = re.compile(r"^(?P<table>\w+)_y(?P<year>\d{4})m(?P<month>\d{2})$")


@dataclass(frozen=True, slots=True)
class Partition:
    table: str
    name: str
    start: datetime  # inclusive
    end: datetime  # exclusive


def month_start(at: datetime | date) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(at: datetime, months: int) -> datetime:
    index = at.year * 12 + at.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_for(table: str, month: datetime) -> Partition:
    start = month_start(month)
    return Partition(table, f"{table}_y{start.year:04d}m{start.month:02d}", start, add_months(start, 1))


def default_partition(table: str) -> str:
    return f"{table}_default"


def _check(table: str) -> str:
    if table not in PARTITIONED:
        raise ValueError(f"{table} is not a partitioned table")
    return PARTITIONED[table]


def is_partitioned(cursor: Any, table: str) -> bool:
    cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [table])
    row = cursor.fetchone()
    return bool(row and row[0])


def list_partitions(cursor: Any, table: str) -> list[Partition]:
    """The monthly partitions of ``table``, oldest first (the default partition is not listed)."""
    _check(table)
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass", [table],
    )
    found = []
    for (name,) in cursor.fetchall():
        match = _NAME.match(name)
        if match and match["table"] == table:
            found.append(partition_for(table, datetime(int(match["year"]), int(match["month"]), 1, tzinfo=UTC)))
    return sorted(found, key=lambda p: p.start)


def ensure_partitions(cursor: Any, table: str, first: datetime, last: datetime) -> list[str]:
    """Make the default partition and one partition per month from ``first``'s month to ``last``'s, those not
    already there; rows of a new month waiting in the default partition are moved into it. Idempotent. Returns the
    names made. Run it inside a transaction (the moves must be all or nothing)."""
    key = _check(table)
    made: list[str] = []
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    default = default_partition(table)
    cursor.execute("SELECT to_regclass(%s) IS NULL", [default])
    if cursor.fetchone()[0]:
        cursor.execute(f"CREATE TABLE {default} PARTITION OF {table} DEFAULT")
        made.append(default)
    existing = {p.name for p in list_partitions(cursor, table)}
    month = month_start(first)
    while month <= last:
        part = partition_for(table, month)
        month = part.end
        if part.name in existing:
            continue
        bounds = [part.start, part.end]
        cursor.execute(f"SELECT 1 FROM {default} WHERE {key} >= %s AND {key} < %s LIMIT 1", bounds)  # noqa: S608
        waiting = cursor.fetchone() is not None
        if waiting:
            # The new partition's range may not hold rows in the default partition: set them aside, then put them
            # back through the parent, which routes them to the new partition.
            moved = f"{part.name}_moving"
            cursor.execute(f"CREATE TEMP TABLE {moved} (LIKE {table}) ON COMMIT DROP")
            cursor.execute(
                f"WITH gone AS (DELETE FROM {default} WHERE {key} >= %s AND {key} < %s RETURNING *) "  # noqa: S608
                f"INSERT INTO {moved} SELECT * FROM gone", bounds,
            )
        cursor.execute(
            f"CREATE TABLE {part.name} PARTITION OF {table} FOR VALUES FROM (%s) TO (%s)", bounds
        )
        if waiting:
            cursor.execute(f"INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM {moved}")  # noqa: S608
            cursor.execute(f"DROP TABLE {moved}")
            # The moved rows' foreign-key checks (deferred, as all of Django's are) would forbid the next month's
            # CREATE in this transaction: check them now, then defer again.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        made.append(part.name)
    return made


def ensure_ahead(cursor: Any, now: datetime, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """This month's partitions and the next ``months_ahead`` months' of every partitioned table."""
    made: list[str] = []
    for table in PARTITIONED:
        if is_partitioned(cursor, table):
            made += ensure_partitions(cursor, table, now, add_months(month_start(now), months_ahead))
    return made


def drop_partition(cursor: Any, partition: Partition) -> None:
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    cursor.execute(f"DROP TABLE {partition.name}")


def drop_empty_partitions(cursor: Any, table: str, now: datetime) -> list[str]:
    """Drop the partitions of months wholly past that hold no row any more (emptied by retention)."""
    this_month = month_start(now)
    dropped = []
    for part in list_partitions(cursor, table):
        if part.end > this_month:
            continue
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {part.name})")  # noqa: S608 (our names)
        if cursor.fetchone()[0]:
            drop_partition(cursor, part)
            dropped.append(part.name)
    return dropped


# ---------------------------------------------------------------------------------------------------------------
# The migrations: a plain table becomes a partitioned one (and back), keeping its columns, ids, constraints, indexes.


def _definitions(cursor: Any, table: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, definition) of every constraint but the primary key, and the definition of every index that backs
    no constraint, as the database states them."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype <> 'p' ORDER BY contype = 'f', conname", [table],
    )
    constraints = list(cursor.fetchall())
    cursor.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass "
        "AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conindid <> 0) ORDER BY indexrelid",
        [table],
    )
    # A partitioned index reads "ON ONLY table": made again that way it would have no partitions' indexes.
    indexes = [d.replace(" ON ONLY ", " ON ") for (d,) in cursor.fetchall()]
    return constraints, indexes


def convert_table(cursor: Any, table: str, *, partitioned: bool, now: datetime) -> None:
    """Rebuild ``table`` as a partitioned table (or, ``partitioned=False``, as a plain one again) with the same
    columns, rows, identity sequence position, constraints and indexes. Takes an exclusive lock for the copy: run
    in a migration."""
    key = _check(table)
    if is_partitioned(cursor, table) == partitioned:
        return
    constraints, indexes = _definitions(cursor, table)
    old = f"{table}_before_partitioning" if partitioned else f"{table}_before_unpartitioning"
    cursor.execute(f"SELECT last_value, is_called FROM {table}_id_seq")  # noqa: S608 (our names)
    last_value, is_called = cursor.fetchone()
    cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
    cursor.execute(f"ALTER SEQUENCE {table}_id_seq RENAME TO {old}_id_seq")
    cursor.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING STORAGE)"
        + (f" PARTITION BY RANGE ({key})" if partitioned else "")
    )
    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, last_value, is_called])
    if partitioned:
        # The months that hold rows (not every month since the oldest: one stray old timestamp would make hundreds
        # of empty partitions), this month and the months ahead.
        cursor.execute(f"SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC') FROM {old}")  # noqa: S608
        for (month,) in cursor.fetchall():
            ensure_partitions(cursor, table, month.replace(tzinfo=UTC), month.replace(tzinfo=UTC))
        ensure_partitions(cursor, table, now, add_months(month_start(now), MONTHS_AHEAD))
    cursor.execute(f"INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM {old}")  # noqa: S608
    cursor.execute(f"DROP TABLE {old}")
    cursor.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({'id, ' + key if partitioned else 'id'})")
    for statement in indexes:
        cursor.execute(statement)
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def partition_migration(table: str, *, partitioned: bool) -> Any:
    """A RunPython function for a migration: ``table`` made partitioned (or plain)."""

    def run(apps: Any, schema_editor: Any) -> None:
        with schema_editor.connection.cursor() as cursor:
            convert_table(cursor, table, partitioned=partitioned, now=datetime.now(UTC))

    return run
