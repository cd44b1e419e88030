from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from fake_x import ACCESS, CLIENT_ID, REFRESH, FakeX

from caredesk.connectors.builtin.x import XConfig, XProvider
from caredesk.connectors.registry import register_provider, unregister_provider


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with FakeX() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def registered() -> Iterator[type[XProvider]]:
    register_provider(XProvider)
    yield XProvider
    unregister_provider(XProvider.key)


@pytest.fixture
def make_provider(fake: FakeX, http: httpx.Client) -> Callable[..., XProvider]:
    def make(credentials: Mapping[str, Any] | None = None, **config: Any) -> XProvider:
        parsed = XConfig.model_validate({"api": fake.url, **config})
        creds = credentials or {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID}
        return XProvider(parsed, creds, http)

    return make
