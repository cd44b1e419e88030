"""Monthly partitions of activities and raw payloads: where rows land, the default partition, the job that makes
partitions ahead (idempotent, moving waiting rows), dropping emptied months, and the migration both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from caredesk.cases.models import Activity
from caredesk.connectors.models import RawPayload
from caredesk.retention import partitions
from caredesk.retention.tasks import maintain_partitions
from factories import make_brand, make_installation

pytestmark = pytest.mark.django_db


def _where(table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return str(cursor.fetchone()[0])


def _activity(at: datetime) -> Activity:
    return Activity.objects.create(kind="case_labels", brand=make_brand(), created_at=at, data={})


def _names(table: str) -> list[str]:
    with connection.cursor() as cursor:
        return [p.name for p in partitions.list_partitions(cursor, table)]


def test_both_tables_are_partitioned_with_this_month_the_next_and_a_default() -> None:
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        for table in partitions.PARTITIONED:
            assert partitions.is_partitioned(cursor, table)
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [partitions.default_partition(table)])
            assert cursor.fetchone()[0]
            names = _names(table)
            for ahead in range(partitions.MONTHS_AHEAD + 1):
                assert partitions.partition_for(table, partitions.add_months(now, ahead)).name in names


def test_an_activity_lands_in_its_month_and_one_outside_every_month_in_the_default() -> None:
    now = datetime.now(UTC)
    current = _activity(now)
    ancient = _activity(datetime(2001, 5, 5, tzinfo=UTC))
    assert _where("cases_activity", current.pk) == partitions.partition_for("cases_activity", now).name
    assert _where("cases_activity", ancient.pk) == "cases_activity_default"
    assert ancient.pk > current.pk  # one sequence for every partition: ids keep increasing
    # Django's queries by id work across partitions.
    assert Activity.objects.get(pk=ancient.pk).created_at.year == 2001
    Activity.objects.filter(pk=ancient.pk).update(data={"x": 1})
    assert Activity.objects.get(pk=ancient.pk).data == {"x": 1}


def test_a_raw_payload_lands_in_its_month_and_is_read_updated_by_id() -> None:
    installation = make_installation()
    now = datetime.now(UTC)
    payload = RawPayload.objects.create(installation=installation, source="webhook", received_at=now, body=b"{}")
    assert _where("connectors_rawpayload", payload.pk) == partitions.partition_for("connectors_rawpayload", now).name
    RawPayload.objects.filter(pk=payload.pk).update(status="failed", error="boom")
    assert RawPayload.objects.get(pk=payload.pk).status == "failed"


def test_making_partitions_is_idempotent_and_moves_rows_waiting_in_the_default() -> None:
    waiting = _activity(datetime(2001, 5, 5, tzinfo=UTC))
    june = _activity(datetime(2001, 6, 30, tzinfo=UTC))  # two months in a row with rows to move
    other = _activity(datetime(2001, 7, 1, tzinfo=UTC))
    first, last = datetime(2001, 4, 1, tzinfo=UTC), datetime(2001, 6, 30, tzinfo=UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        made = partitions.ensure_partitions(cursor, "cases_activity", first, last)
        assert made == ["cases_activity_y2001m04", "cases_activity_y2001m05", "cases_activity_y2001m06"]
        assert partitions.ensure_partitions(cursor, "cases_activity", first, last) == []
    assert _where("cases_activity", waiting.pk) == "cases_activity_y2001m05"  # moved, same id
    assert _where("cases_activity", june.pk) == "cases_activity_y2001m06"
    assert _where("cases_activity", other.pk) == "cases_activity_default"  # July: no partition yet
    assert Activity.objects.get(pk=waiting.pk).kind == "case_labels"
    # The worker's job: nothing to do when every month ahead is there.
    assert maintain_partitions(datetime.now(UTC)) == []


def test_only_past_months_left_empty_are_dropped() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        partitions.ensure_partitions(cursor, "cases_activity", datetime(2001, 4, 1, tzinfo=UTC),
                                     datetime(2001, 5, 1, tzinfo=UTC))
    kept = _activity(datetime(2001, 5, 5, tzinfo=UTC))
    now = datetime.now(UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        dropped = partitions.drop_empty_partitions(cursor, "cases_activity", now)
    assert "cases_activity_y2001m04" in dropped
    names = _names("cases_activity")
    assert "cases_activity_y2001m05" in names  # holds a row
    assert partitions.partition_for("cases_activity", now).name in names  # this month and ahead stay
    assert Activity.objects.filter(pk=kept.pk).exists()


def _schema(table: str) -> tuple[list[tuple[str, str]], list[str]]:
    with connection.cursor() as cursor:
        return partitions._definitions(cursor, table)


@pytest.mark.parametrize("table", sorted(partitions.PARTITIONED))
def test_the_migration_goes_back_to_a_plain_table_and_forward_again_keeping_rows_ids_and_schema(table: str) -> None:
    installation = make_installation()
    now = datetime.now(UTC)
    if table == "cases_activity":
        ids = [_activity(now).pk, _activity(datetime(2001, 1, 1, tzinfo=UTC)).pk]
    else:
        ids = [RawPayload.objects.create(installation=installation, source="poll", received_at=now, body=b"x").pk]
    before = _schema(table)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks on the rows just made
        partitions.convert_table(cursor, table, partitioned=False, now=now)
        assert not partitions.is_partitioned(cursor, table)
        assert _schema(table) == before
        partitions.convert_table(cursor, table, partitioned=True, now=now)
        assert partitions.is_partitioned(cursor, table)
        if table == "cases_activity":  # the 2001 row's month is made, not the months between
            names = [p.name for p in partitions.list_partitions(cursor, table)]
            assert "cases_activity_y2001m01" in names and "cases_activity_y2001m02" not in names
        cursor.execute(f"SELECT id FROM {table} ORDER BY id")  # noqa: S608
        assert [r[0] for r in cursor.fetchall()] == ids
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
        assert cursor.fetchone()[0] > max(ids)  # the sequence went on from where it was
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    assert _schema(table) == before


def test_the_worker_makes_partitions_and_applies_retention_daily() -> None:
    from procrastinate.contrib.django import app

    from caredesk.retention.tasks import partitions_job, retention_job

    crons = {p.task.name: p.cron for p in app.periodic_registry.periodic_tasks.values()
             if p.task in (partitions_job, retention_job)}
    assert crons == {"retention.partitions": "41 1 * * *", "retention.apply": "13 3 * * *"}
