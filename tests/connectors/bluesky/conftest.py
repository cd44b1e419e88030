"""Fixtures for the Bluesky provider tests: a fake PDS and the provider pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bluesky_servers import APP_PASSWORD, BRAND_HANDLE, Pds, PdsServer, ProviderFactory, running_pds

from caredesk.connectors.builtin.bluesky import BlueskyProvider
from caredesk.connectors.registry import register_provider, unregister_provider


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    register_provider(BlueskyProvider)
    yield
    unregister_provider("bluesky")


@pytest.fixture
def pds() -> Iterator[PdsServer]:
    with running_pds(Pds()) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def make_provider(pds: PdsServer, http: httpx.Client) -> ProviderFactory:
    def make(credentials: dict[str, Any] | None = None, **config: Any) -> BlueskyProvider:
        cfg = BlueskyProvider.parse_config({"service": pds.url, "appview": pds.url, "handle": BRAND_HANDLE, **config})
        creds = BlueskyProvider.parse_credentials(
            credentials if credentials is not None else {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD}
        ).to_storage()
        return BlueskyProvider(cfg, creds, http)  # type: ignore[arg-type]

    return make

