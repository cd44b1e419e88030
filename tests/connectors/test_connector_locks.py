"""An ingest locks its installation row alone with FOR NO KEY UPDATE, so rows that only point at the installation or
its brand (a sent reply's outbound post, an activity) never wait for it, which once closed a deadlock with a send
job holding a case the poll was about to thread into."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from caredesk.connectors.actions import lock_installation
from caredesk.connectors.models import ConnectorInstallation
from factories import make_installation

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_lock_is_no_key_update_of_the_installation_row_only() -> None:
    installation = make_installation()
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        locked = lock_installation(installation.pk)
    assert locked.brand.pk == installation.brand_id  # the brand comes along, unlocked
    (sql,) = [q["sql"] for q in queries.captured_queries if "FOR" in q["sql"]]
    assert sql.endswith('FOR NO KEY UPDATE OF "connectors_connectorinstallation"')


def test_a_row_pointing_at_a_locked_installation_is_not_blocked_but_a_second_ingest_is() -> None:
    installation = make_installation()
    other_done, second_lock = threading.Event(), threading.Event()

    def insert_pointing_row() -> None:
        try:
            with transaction.atomic():
                # What PostgreSQL's foreign-key check takes when a send job stores the outbound post.
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT 1 FROM {ConnectorInstallation._meta.db_table} WHERE id = %s FOR KEY SHARE",  # noqa: S608
                        [installation.pk],
                    )
            other_done.set()
        finally:
            connection.close()

    def second_ingest() -> None:
        try:
            with transaction.atomic():
                lock_installation(installation.pk)
                second_lock.set()
        finally:
            connection.close()

    with transaction.atomic():
        lock_installation(installation.pk)
        pointing, rival = threading.Thread(target=insert_pointing_row), threading.Thread(target=second_ingest)
        pointing.start()
        rival.start()
        assert other_done.wait(5)
        assert not second_lock.wait(0.5)  # one ingest of an installation at a time
    rival.join(5)
    pointing.join(5)
    assert second_lock.is_set()
