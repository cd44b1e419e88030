"""Set-based writes for ingest: ids taken from the sequences in one query, rows sent with ``COPY``.

Django's ``bulk_create`` built a model instance per row and quoted every value in Python (the connection binds
parameters on the client); for a batch of posts with their JSON that was most of ingest's CPU. Here a batch is a
list of tuples, JSON is serialized once per row, and PostgreSQL's ``COPY`` reads them in one stream. Ids are taken
first (``nextval`` over the batch), so the rows that point at each other (a post at its new case, an activity at
its post) are written without a round trip per row.

Only the actions modules call these, inside the transaction their caller owns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model


def allocate_ids(table: str, count: int) -> list[int]:
    """``count`` fresh ids from ``table``'s id sequence, in increasing order."""
    return allocate_id_blocks([(table, count)])[0]


def allocate_id_blocks(counts: Sequence[tuple[str, int]]) -> list[list[int]]:
    """``allocate_ids`` for several tables in one round trip: for each ``(table, count)``, ``count`` fresh ids
    from that table's id sequence, in increasing order."""
    blocks: list[list[int]] = [[] for _ in counts]
    wanted = [(i, table, count) for i, (table, count) in enumerate(counts) if count > 0]
    if not wanted:
        return blocks
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT u.i, nextval(pg_get_serial_sequence(u.t, 'id'))"
            " FROM unnest(%s::int[], %s::text[], %s::int[]) AS u(i, t, n), generate_series(1, u.n) ORDER BY 1, 2",
            [[w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted]],
        )
        for index, value in cursor.fetchall():
            blocks[index].append(int(value))
    return blocks


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in ``columns`` order; JSON columns as already serialized text) with one COPY."""
    names = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor, cursor.cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} in a batch update")


def update_rows(objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of many rows of one model with a single ``UPDATE … FROM jsonb_to_recordset(…)``.

    One statement and one parameter for the batch: PostgreSQL reads the rows from one JSON document, typed by
    the record definition, instead of one statement per row (or a VALUES list whose thousands of placeholders the
    client-side binding splits and quotes one by one). The ids go again as an array: the planner cannot see into
    the document (it guesses 100 rows) and joined it to a sequential scan of the whole table, a cost growing with
    the table; ``id = ANY(…)`` makes it an index scan of the batch's rows.
    """
    if not objects:
        return
    meta = objects[0]._meta
    model_fields = [meta.get_field(name) for name in fields]
    pk = meta.pk
    assert pk is not None and pk.column == "id", "update_records keys rows by an id column"
    record = ", ".join(f'"{f.column}" {f.db_type(connection)}' for f in [pk, *model_fields])  # type: ignore[union-attr]
    # Values go into the JSON document as they are (datetimes as ISO text; a JSON field's value as a jsonb value):
    # the record definition casts them, and Django's per-value preparation was most of this function's time.
    attnames = [(str(f.column), f.attname) for f in model_fields]  # type: ignore[union-attr]
    rows = [{"id": obj.pk, **{column: getattr(obj, attname) for column, attname in attnames}} for obj in objects]
    update_records(meta.db_table, record, [column for column, _ in attnames], rows)


def update_records(table: str, record: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """``update_rows`` for plain rows: ``rows`` are dicts with ``id`` and ``columns``; ``record`` types them
    (``"id bigint, name text"``). Values go in the JSON document as they are (datetimes as ISO text)."""
    if not rows:
        return
    assignments = ", ".join(f'"{c}" = v."{c}"' for c in columns)
    sql = (
        f'UPDATE "{table}" AS t SET {assignments} FROM jsonb_to_recordset(%s::jsonb) AS v({record})'  # noqa: S608
        " WHERE t.id = v.id AND t.id = ANY(%s::bigint[])"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(rows, default=_json_value), [row["id"] for row in rows]])
