"""Shared fixtures. The database is chosen by the ``caredesk.testing.database`` plugin (see pyproject.toml)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytest_plugins = ["browser_support"]


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # See caredesk.testing.hashers: the default hasher would be most of the suite's setup time.
    settings.PASSWORD_HASHERS = ["caredesk.testing.hashers.FastPBKDF2PasswordHasher"]


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
