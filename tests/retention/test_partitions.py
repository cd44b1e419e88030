"""Monthly partitions of raw payloads: where rows land, the default partition, the job that makes partitions ahead
(idempotent, moving waiting rows), dropping emptied months, and the migration both ways."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.retention import partitions
from caredesk.retention.tasks import maintain_partitions
from factories import make_installation

pytestmark = pytest.mark.django_db

TABLE = "connectors_rawpayload"


@pytest.fixture
def installation() -> ConnectorInstallation:
    return make_installation()


def _where(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE id = %s", [pk])  # noqa: S608
        return str(cursor.fetchone()[0])


def _payload(installation: ConnectorInstallation, at: datetime) -> RawPayload:
    return RawPayload.objects.create(installation=installation, source="webhook", received_at=at, body=b"{}")


def _names() -> list[str]:
    with connection.cursor() as cursor:
        return [p.name for p in partitions.list_partitions(cursor, TABLE)]


def test_raw_payloads_are_partitioned_with_this_month_the_next_and_a_default() -> None:
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        assert partitions.is_partitioned(cursor, TABLE)
        assert not partitions.is_partitioned(cursor, "cases_activity")  # measured: one table is faster there
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [partitions.default_partition(TABLE)])
        assert cursor.fetchone()[0]
    names = _names()
    for ahead in range(partitions.MONTHS_AHEAD + 1):
        assert partitions.partition_for(TABLE, partitions.add_months(now, ahead)).name in names


def test_a_payload_lands_in_its_month_and_one_outside_every_month_in_the_default(
    installation: ConnectorInstallation
) -> None:
    now = datetime.now(UTC)
    current = _payload(installation, now)
    ancient = _payload(installation, datetime(2001, 5, 5, tzinfo=UTC))
    assert _where(current.pk) == partitions.partition_for(TABLE, now).name
    assert _where(ancient.pk) == f"{TABLE}_default"
    assert ancient.pk > current.pk  # one sequence for every partition: ids keep increasing
    # Django's queries by id work across partitions.
    RawPayload.objects.filter(pk=ancient.pk).update(status="failed", error="boom")
    assert RawPayload.objects.get(pk=ancient.pk).status == "failed"
    assert RawPayload.objects.get(pk=current.pk).received_at == now


def test_making_partitions_is_idempotent_and_moves_rows_waiting_in_the_default(
    installation: ConnectorInstallation
) -> None:
    waiting = _payload(installation, datetime(2001, 5, 5, tzinfo=UTC))
    june = _payload(installation, datetime(2001, 6, 30, tzinfo=UTC))  # two months in a row with rows to move
    other = _payload(installation, datetime(2001, 7, 1, tzinfo=UTC))
    first, last = datetime(2001, 4, 1, tzinfo=UTC), datetime(2001, 6, 30, tzinfo=UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        made = partitions.ensure_partitions(cursor, TABLE, first, last)
        assert made == [f"{TABLE}_y2001m04", f"{TABLE}_y2001m05", f"{TABLE}_y2001m06"]
        assert partitions.ensure_partitions(cursor, TABLE, first, last) == []
    assert _where(waiting.pk) == f"{TABLE}_y2001m05"  # moved, same id
    assert _where(june.pk) == f"{TABLE}_y2001m06"
    assert _where(other.pk) == f"{TABLE}_default"  # July: no partition yet
    assert bytes(RawPayload.objects.get(pk=waiting.pk).body) == b"{}"
    # The worker's job: nothing to do when every month ahead is there.
    assert maintain_partitions(datetime.now(UTC)) == []


def test_only_past_months_left_empty_are_dropped(installation: ConnectorInstallation) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        partitions.ensure_partitions(cursor, TABLE, datetime(2001, 4, 1, tzinfo=UTC), datetime(2001, 5, 1, tzinfo=UTC))
    kept = _payload(installation, datetime(2001, 5, 5, tzinfo=UTC))
    now = datetime.now(UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's own rows: no FK check left pending
        dropped = partitions.drop_empty_partitions(cursor, TABLE, now)
    assert f"{TABLE}_y2001m04" in dropped
    names = _names()
    assert f"{TABLE}_y2001m05" in names  # holds a row
    assert partitions.partition_for(TABLE, now).name in names  # this month and ahead stay
    assert RawPayload.objects.filter(pk=kept.pk).exists()


def _schema() -> tuple[list[tuple[str, str]], list[str]]:
    with connection.cursor() as cursor:
        return partitions._definitions(cursor, TABLE)


def test_the_migration_goes_back_to_a_plain_table_and_forward_again_keeping_rows_ids_and_schema(
    installation: ConnectorInstallation
) -> None:
    now = datetime.now(UTC)
    ids = [_payload(installation, now).pk, _payload(installation, datetime(2001, 1, 1, tzinfo=UTC)).pk]
    before = _schema()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks on the rows just made
        partitions.convert_table(cursor, TABLE, partitioned=False, now=now)
        assert not partitions.is_partitioned(cursor, TABLE)
        assert _schema() == before
        partitions.convert_table(cursor, TABLE, partitioned=True, now=now)
        assert partitions.is_partitioned(cursor, TABLE)
        names = [p.name for p in partitions.list_partitions(cursor, TABLE)]
        # The 2001 row's month is made, not the months between.
        assert f"{TABLE}_y2001m01" in names and f"{TABLE}_y2001m02" not in names
        cursor.execute(f"SELECT id FROM {TABLE} ORDER BY id")  # noqa: S608
        assert [r[0] for r in cursor.fetchall()] == ids
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [TABLE])
        assert cursor.fetchone()[0] > max(ids)  # the sequence went on from where it was
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    assert _schema() == before


def test_the_worker_makes_partitions_and_applies_retention_daily() -> None:
    from procrastinate.contrib.django import app

    from caredesk.retention.tasks import partitions_job, retention_job

    crons = {p.task.name: p.cron for p in app.periodic_registry.periodic_tasks.values()
             if p.task in (partitions_job, retention_job)}
    assert crons == {"retention.partitions": "41 1 * * *", "retention.apply": "13 3 * * *"}
