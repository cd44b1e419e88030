from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from fake_reddit import SCRIPT_APP, FakeReddit, config_for

from caredesk.connectors.builtin.reddit import RedditConfig, RedditProvider
from caredesk.connectors.registry import register_provider, unregister_provider


@pytest.fixture
def fake() -> Iterator[FakeReddit]:
    with FakeReddit() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def registered() -> Iterator[type[RedditProvider]]:
    register_provider(RedditProvider)
    yield RedditProvider
    unregister_provider(RedditProvider.key)


@pytest.fixture
def make_provider(fake: FakeReddit, http: httpx.Client) -> Callable[..., RedditProvider]:
    def make(credentials: Mapping[str, Any] | None = None, **config: Any) -> RedditProvider:
        parsed = RedditConfig.model_validate(config_for(fake, **config))
        return RedditProvider(parsed, dict(credentials or SCRIPT_APP), http)

    return make
