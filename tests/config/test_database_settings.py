"""DATABASE_URL and the pool, PgBouncer, direct and replica settings; the replica router."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from caredesk.accounts.models import Brand
from caredesk.config.database import database_settings, direct_database
from caredesk.config.replica import ReplicaRouter, replica_reads, reporting_alias

URL = "postgresql://care:s%40cret@db.example.com:6432/caredesk?sslmode=verify-full&sslrootcert=/etc/ca.pem"


def test_an_external_server_passes_libpq_options_through() -> None:
    db = database_settings({"DATABASE_URL": URL})["default"]
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == (
        "db.example.com", "6432", "caredesk", "care", "s@cret")
    assert db["OPTIONS"] == {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem"}
    assert db["CONN_MAX_AGE"] == 0
    assert "DISABLE_SERVER_SIDE_CURSORS" not in db


def test_the_pool_is_off_unless_asked_for() -> None:
    assert "pool" not in database_settings({"DATABASE_URL": URL})["default"]["OPTIONS"]
    db = database_settings({"DATABASE_URL": URL, "CAREDESK_DB_POOL_MAX": "8", "CAREDESK_DB_POOL_MIN": "2"})
    assert db["default"]["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 8, "timeout": 10.0}
    assert db["default"]["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections


@pytest.mark.parametrize(("env", "message"), [
    ({"CAREDESK_DB_POOL_MAX": "many"}, "whole number"),
    ({"CAREDESK_DB_POOL_MAX": "-1"}, "negative"),
    ({"CAREDESK_DB_POOL_MAX": "2", "CAREDESK_DB_POOL_MIN": "4"}, "must not exceed"),
])
def test_bad_pool_settings_are_refused_clearly(env: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        database_settings({"DATABASE_URL": URL, **env})


def test_pgbouncer_mode_turns_server_side_cursors_off() -> None:
    db = database_settings({"DATABASE_URL": URL, "CAREDESK_DB_PGBOUNCER": "1"})["default"]
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True


def test_the_direct_url_is_parsed_for_listen() -> None:
    assert direct_database({}) is None
    direct = direct_database({"DATABASE_DIRECT_URL": "postgresql://care@db-primary:5432/caredesk"})
    assert direct is not None and direct["HOST"] == "db-primary" and direct["PORT"] == "5432"


def test_a_replica_is_an_alias_mirrored_in_tests() -> None:
    dbs = database_settings({"DATABASE_URL": URL, "DATABASE_REPLICA_URL": "postgresql://ro@replica:5432/caredesk",
                             "CAREDESK_DB_POOL_MAX": "4"})
    assert dbs["replica"]["HOST"] == "replica"
    assert dbs["replica"]["TEST"] == {"MIRROR": "default"}
    assert dbs["replica"]["OPTIONS"]["pool"]["min_size"] == 0
    assert "replica" not in database_settings({"DATABASE_URL": URL})


def test_the_router_sends_only_reporting_reads_to_a_configured_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    router = ReplicaRouter()
    monkeypatch.setitem(settings.DATABASES, "replica", {**settings.DATABASES["default"], "TEST": {"MIRROR": "default"}})
    assert router.db_for_read(Brand) is None
    with replica_reads() as alias:
        assert alias == "replica"
        assert router.db_for_read(Brand) == "replica"
        assert router.db_for_write(Brand) == "default"
    assert router.db_for_read(Brand) is None
    assert router.allow_migrate("replica", "accounts") is False
    assert router.allow_migrate("default", "accounts") is None


def test_without_a_replica_reporting_reads_stay_on_the_primary() -> None:
    router = ReplicaRouter()
    with replica_reads() as alias:
        assert alias == "default" == reporting_alias()
        assert router.db_for_read(Brand) is None


def test_the_live_stream_listens_on_the_direct_database_when_one_is_set() -> None:
    from django.test import override_settings

    from caredesk.inbox.stream import database_conninfo

    assert "db-primary" not in database_conninfo()
    direct = direct_database({"DATABASE_DIRECT_URL": "postgresql://care@db-primary:5432/caredesk?sslmode=require"})
    with override_settings(CAREDESK_DIRECT_DATABASE=direct):
        conninfo = database_conninfo()
    assert "host=db-primary" in conninfo and "sslmode=require" in conninfo and "dbname=caredesk" in conninfo
