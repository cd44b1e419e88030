"""Leases: which ``caredesk listen`` process holds an installation's stream.

A lease is a row (:class:`~caredesk.connectors.models.ConnectorLease`: holder, expires_at) renewed by the holder's
heartbeat; every comparison uses the database's clock (``now()``), so machines whose clocks differ agree on
who holds what. All SQL here is single statements in autocommit, one round trip each.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

_TABLE = "connectors_connectorlease"


def acquire(installation_id: int, holder: str, ttl_seconds: float) -> bool:
    """Take the lease if it is free, expired, or already ours; True when we hold it now."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} AS l (installation_id, holder, acquired_at, heartbeat_at, expires_at) "  # noqa: S608
            "VALUES (%s, %s, now(), now(), now() + make_interval(secs => %s)) "
            "ON CONFLICT (installation_id) DO UPDATE SET holder = EXCLUDED.holder, "
            "acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE now() END, "
            "heartbeat_at = now(), expires_at = EXCLUDED.expires_at "
            "WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder "
            "RETURNING installation_id",
            [installation_id, holder, ttl_seconds],
        )
        return cursor.fetchone() is not None


def renew(installation_ids: Iterable[int], holder: str, ttl_seconds: float) -> set[int]:
    """The heartbeat: extend our leases; returns those still ours (a lease that expired and was taken over is
    not renewed)."""
    ids = list(installation_ids)
    if not ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET heartbeat_at = now(), expires_at = now() + make_interval(secs => %s) "  # noqa: S608
            "WHERE holder = %s AND installation_id = ANY(%s) AND expires_at > now() RETURNING installation_id",
            [ttl_seconds, holder, ids],
        )
        return {int(row[0]) for row in cursor.fetchall()}


def release(installation_id: int, holder: str) -> None:
    """Give the lease up at once (a clean stop), so another process need not wait for it to expire. The row
    stays, expired, for the health page."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET expires_at = now() WHERE holder = %s AND installation_id = %s",  # noqa: S608
            [holder, installation_id],
        )
