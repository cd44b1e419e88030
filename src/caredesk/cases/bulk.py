"""Set-based writes for ingest: ids taken from the sequences in one query, rows sent with ``COPY``.

Django's ``bulk_create`` built a model instance per row and quoted every value in Python (the connection binds
parameters on the client); for a batch of posts with their JSON that was most of ingest's CPU. Here a batch is a
list of tuples, JSON is serialized once per row, and PostgreSQL's ``COPY`` reads them in one stream. Ids are taken
first (``nextval`` over the batch), so the rows that point at each other (a post at its new case, an activity at
its post) are written without a round trip per row.

Only the actions modules call these, inside the transaction their caller owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def allocate_ids(table: str, count: int) -> list[int]:
    """``count`` fresh ids from ``table``'s id sequence, in increasing order."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s) ORDER BY 1",
            [table, count],
        )
        return [int(row[0]) for row in cursor.fetchall()]


def copy_rows(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in ``columns`` order; JSON columns as already serialized text) with one COPY."""
    names = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor, cursor.cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def update_rows(objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of many rows of one model with a single ``UPDATE … FROM (VALUES …)``.

    One statement for the batch instead of one per row: PostgreSQL plans it once and the batch costs one round
    trip. Each value is cast to its column's type, so NULLs and the first row need no guessing.
    """
    if not objects:
        return
    meta = objects[0]._meta
    model_fields = [meta.get_field(name) for name in fields]
    pk = meta.pk
    assert pk is not None
    columns = [pk, *model_fields]
    casts = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in columns) + ")"  # type: ignore[union-attr]
    names = ", ".join(f'"{f.column}"' for f in columns)  # type: ignore[union-attr]
    assignments = ", ".join(f'"{f.column}" = v."{f.column}"' for f in model_fields)  # type: ignore[union-attr]
    params: list[Any] = []
    for obj in objects:
        params.append(obj.pk)
        params.extend(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in model_fields)  # type: ignore[union-attr]
    sql = (
        f'UPDATE "{meta.db_table}" AS t SET {assignments} FROM (VALUES {", ".join([casts] * len(objects))})'  # noqa: S608
        f' AS v({names}) WHERE t."{pk.column}" = v."{pk.column}"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
