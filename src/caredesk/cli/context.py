"""The one set-up context every ``caredesk`` command runs in."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from caredesk.config.embedded import Environment, MissingSecretKey, prepare


class CommandError(Exception):
    """The command cannot run; the message tells the user what to do."""


def setup(args: argparse.Namespace, *, generate_secret: bool = False) -> Environment:
    """The data dir, the database (embedded unless DATABASE_URL) and Django, for commands that manage their own
    lifetime (demo); the caller stops the environment. ``generate_secret``: see ``config.embedded.prepare``."""
    try:
        env = prepare(getattr(args, "data_dir", None), generate_secret=generate_secret)
    except MissingSecretKey as exc:
        raise CommandError(str(exc)) from None
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caredesk.config.settings")
    import django

    django.setup()
    return env


def _check_schema() -> None:
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"cannot reach the database: {str(exc).strip().splitlines()[0]}") from exc
    if pending:
        raise CommandError("the database schema is missing or out of date: run caredesk migrate")


@contextlib.contextmanager
def django_context(args: argparse.Namespace, *, schema: bool = True) -> Iterator[Environment]:
    """What every command runs in: the data dir and database (embedded unless DATABASE_URL), Django, and, with
    ``schema``, a check that the database is migrated, so a command says "run caredesk migrate" instead of
    failing with a traceback. The embedded server stops when the block ends."""
    env = setup(args)
    try:
        if schema:
            _check_schema()
        yield env
    finally:
        from django.db import connections

        connections.close_all()
        env.stop()


_setup = setup  # the name older callers import
