"""Read-only reporting reads on a replica, when one is configured (``DATABASE_REPLICA_URL``).

Only reads that are clearly read-only *and* may be a little stale go there, inside :func:`replica_reads`: the
``/metrics`` collector now, issue 14's analytics later. Everything else, the inbox included, reads the primary:
an agent who just replied must see their reply, and a replica may be seconds behind. Without a replica the
block reads the primary, so callers need not know which they get.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.conf import settings

from caredesk.config.database import REPLICA

_on_replica: ContextVar[bool] = ContextVar("caredesk_replica_reads", default=False)


@contextlib.contextmanager
def replica_reads() -> Iterator[str]:
    """Route the ORM's reads in this block (this thread or task, and code it calls) to the replica, if any.
    Yields the alias they go to, for raw SQL: ``connections[alias].cursor()``."""
    token = _on_replica.set(True)
    try:
        yield reporting_alias()
    finally:
        _on_replica.reset(token)


def reporting_alias() -> str:
    """The alias reporting reads use right now: the replica inside :func:`replica_reads` when one exists."""
    return REPLICA if _on_replica.get() and REPLICA in settings.DATABASES else "default"


class ReplicaRouter:
    """Django database router: reads inside :func:`replica_reads` to the replica; writes never."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return REPLICA if reporting_alias() == REPLICA else None

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # The replica holds the same rows as the primary: an object read there relates to one read here.
        if {obj1._state.db, obj2._state.db} <= {"default", REPLICA}:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # A replica follows the primary's schema by replication; migrations run on the primary only.
        return False if db == REPLICA else None
