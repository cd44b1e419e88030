from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from fake_mastodon import TOKEN, FakeMastodon

from caredesk.connectors.base import ConnectorError, FetchResult
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


def consume(provider: MastodonProvider, cursor: Mapping[str, Any],
            stop: Callable[[list[FetchResult]], bool] = lambda batches: False,
            ) -> tuple[list[FetchResult], ConnectorError | None]:
    """Run the provider's stream until ``stop`` says so or it fails; the batches and the error it ended with.
    The overall timeout only keeps a broken test from hanging; nothing is timed."""

    async def main() -> tuple[list[FetchResult], ConnectorError | None]:
        batches: list[FetchResult] = []
        async with httpx.AsyncClient() as client:
            events = provider.stream(cursor, client)
            try:
                async for batch in events:
                    batches.append(batch)
                    if stop(batches):
                        break
            except ConnectorError as exc:
                return batches, exc
            finally:
                await events.aclose()  # type: ignore[attr-defined]
        return batches, None

    return asyncio.run(asyncio.wait_for(main(), 30))
