"""Fixtures for the connector runtime's tests: the test providers registered, a platform double running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from runtime_platform import Platform, running_platform
from runtime_providers import TEST_PROVIDERS

from caredesk.connectors.registry import register_provider, unregister_provider


@pytest.fixture(autouse=True)
def test_providers() -> Iterator[None]:
    for provider in TEST_PROVIDERS:
        register_provider(provider)
    yield
    for provider in TEST_PROVIDERS:
        unregister_provider(provider.key)


@pytest.fixture
def platform() -> Iterator[Platform]:
    with running_platform() as running:
        yield running
