"""Fixtures for the cost meter's tests: the paid test provider registered, its platform double running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from costs_platform import PaidPlatform, PaidTestProvider, running_paid_platform

from caredesk.connectors.registry import register_provider, unregister_provider


@pytest.fixture(autouse=True)
def paid_provider() -> Iterator[None]:
    register_provider(PaidTestProvider)
    yield
    unregister_provider(PaidTestProvider.key)


@pytest.fixture
def paid_platform() -> Iterator[PaidPlatform]:
    with running_paid_platform() as running:
        yield running
