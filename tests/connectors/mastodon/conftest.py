from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from fake_mastodon import TOKEN, FakeMastodon

from caredesk.connectors.builtin.mastodon import MastodonConfig, MastodonProvider
from caredesk.connectors.registry import register_provider, unregister_provider


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def registered() -> Iterator[type[MastodonProvider]]:
    register_provider(MastodonProvider)
    yield MastodonProvider
    unregister_provider(MastodonProvider.key)


@pytest.fixture
def make_provider(fake: FakeMastodon, http: httpx.Client) -> Callable[..., MastodonProvider]:
    def make(credentials: Mapping[str, Any] | None = None, **config: Any) -> MastodonProvider:
        parsed = MastodonConfig.model_validate({"instance": fake.url, **config})
        return MastodonProvider(parsed, credentials or {"access_token": TOKEN}, http)

    return make
