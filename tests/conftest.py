"""Shared fixtures. The database is chosen by the ``caredesk.testing.database`` plugin (see pyproject.toml)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytest_plugins = ["browser_support"]


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
