"""Fixtures for the RSS provider's tests: a real feed server on 127.0.0.1 and the provider registered."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from rss_feed_server import FeedServer, running

from caredesk.connectors.builtin.rss import RssProvider
from caredesk.connectors.registry import register_provider, unregister_provider


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with running() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def rss_registered() -> Iterator[None]:
    register_provider(RssProvider)
    yield
    unregister_provider(RssProvider.key)
