"""Shared fixtures. The database is chosen by the ``caredesk.testing.database`` plugin (see pyproject.toml)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

pytest_plugins = ["browser_support"]


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # See caredesk.testing.hashers: the default hasher would be most of the suite's setup time.
    settings.PASSWORD_HASHERS = ["caredesk.testing.hashers.FastPBKDF2PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_jobs_left_behind(request: pytest.FixtureRequest, django_db_blocker: Any) -> Iterator[None]:
    """A committed test's queued jobs die with it. Django's flush empties only Django's own tables, not
    procrastinate's: a job one test deferred was otherwise run by the next test's worker, on rows long gone."""
    yield
    marker = request.node.get_closest_marker("django_db")
    committed = (marker is not None and marker.kwargs.get("transaction")) or "transactional_db" in request.fixturenames
    if committed:
        from django.db import connection

        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM procrastinate_jobs")


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
