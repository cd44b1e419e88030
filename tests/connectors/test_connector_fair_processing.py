"""Stored deliveries processed by the worker, one installation at a time, in turns: a flood for one brand does not
starve another brand's deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import connection

from caredesk.cases.models import Post
from caredesk.connectors import tasks
from caredesk.connectors.base import FetchResult
from caredesk.connectors.batches import dump_batch
from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.connectors.processing import store_payload
from caredesk.connectors.tasks import defer_pending
from caredesk.jobs.worker import run_worker
from factories import make_brand, make_installation, make_post

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_jobs() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


def _streamed(name: str) -> ConnectorInstallation:
    """An installation whose batches come from a stream: the worker's periodic polls leave it alone."""
    installation = make_installation(make_brand(name))
    ConnectorInstallation.objects.filter(pk=installation.pk).update(retry_at=datetime(2999, 1, 1, tzinfo=UTC))
    return installation


def _store(installation: ConnectorInstallation, prefix: str, count: int = 3, body: bytes | None = None) -> int:
    posts = [make_post(f"my router is down ({prefix} {i})", external_id=f"{prefix}-{i}", author_id=f"{prefix}{i}")
             for i in range(count)]
    payload_id = store_payload(installation.pk, RawPayload.Source.STREAM,
                               body or dump_batch(FetchResult(posts=posts, cursor={"at": prefix})), datetime.now(UTC))
    defer_pending(installation.pk)
    return payload_id


def _jobs() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT args::text, status FROM procrastinate_jobs WHERE task_name = %s ORDER BY id",
                       ["connectors.process_pending"])
        return list(cursor.fetchall())


def test_a_burst_of_deliveries_is_one_waiting_job_per_installation():
    flooded, other = _streamed("Flood"), _streamed("Other")
    for n in range(5):
        _store(flooded, f"f{n}")
    _store(other, "o0")
    assert [status for _, status in _jobs()] == ["todo", "todo"]
    run_worker(1, wait=False, install_signal_handlers=False)
    assert not RawPayload.objects.exclude(status=RawPayload.Status.PROCESSED).exists()
    assert Post.objects.count() == 6 * 3


def test_a_flooded_installation_does_not_starve_another(monkeypatch):
    monkeypatch.setattr(tasks, "TURN_PAYLOADS", 2)
    monkeypatch.setattr(tasks, "TURN_SECONDS", 600.0)  # turns end by count here, however slow the machine
    flooded, other = _streamed("Flood"), _streamed("Other")
    for n in range(10):  # the flood is stored, and its job deferred, before the other brand's delivery
        _store(flooded, f"f{n}")
    _store(other, "o0")
    run_worker(1, wait=False, install_signal_handlers=False)
    # Post ids follow the order of processing: the other brand's came after the flood's first turn, not its last.
    flood_ids = sorted(Post.objects.filter(installation=flooded).values_list("pk", flat=True))
    other_ids = list(Post.objects.filter(installation=other).values_list("pk", flat=True))
    assert len(flood_ids) == 30 and len(other_ids) == 3
    assert max(other_ids) < flood_ids[2 * 3 * 2]  # before the flood's third turn
    assert not RawPayload.objects.exclude(status=RawPayload.Status.PROCESSED).exists()


def test_a_bad_delivery_in_a_backlog_is_kept_failed_and_the_rest_is_processed():
    installation = _streamed("Nimbus")
    first = _store(installation, "a")
    bad = _store(installation, "b", body=b'{"posts": [{"id": "x"}]')
    last = _store(installation, "c")
    run_worker(1, wait=False, install_signal_handlers=False)
    status = dict(RawPayload.objects.values_list("pk", "status"))
    assert status == {first: "processed", bad: "failed", last: "processed"}
    assert sorted(Post.objects.values_list("external_id", flat=True)) == [
        "a-0", "a-1", "a-2", "c-0", "c-1", "c-2"]


def test_a_backlog_is_stored_in_sets_and_a_fault_in_a_set_fails_only_its_own_payload():
    installation = _streamed("Nimbus")
    first = _store(installation, "a")
    # Readable, but refused by the database (longer than an external id may be): found only when stored.
    refused = _store(installation, "b" * 300, count=1)
    last = _store(installation, "c")
    assert tasks.process_pending(installation.pk) is False
    status = dict(RawPayload.objects.values_list("pk", "status"))
    assert status == {first: "processed", refused: "failed", last: "processed"}
    assert "value too long" in RawPayload.objects.get(pk=refused).error
    assert sorted(Post.objects.values_list("external_id", flat=True)) == [
        "a-0", "a-1", "a-2", "c-0", "c-1", "c-2"]
    # The cursor is the last payload's, as when each is processed alone.
    installation.refresh_from_db()
    assert installation.cursor == {"at": "c"}


def test_consecutive_payloads_are_one_transaction(django_assert_max_num_queries):
    installation = _streamed("Nimbus")
    for n in range(6):
        _store(installation, f"s{n}", count=5)
    with django_assert_max_num_queries(60):  # one set: not six rounds of some 25 statements
        assert tasks.process_pending(installation.pk) is False
    assert Post.objects.count() == 30
    assert set(RawPayload.objects.values_list("attempts", flat=True)) == {1}
