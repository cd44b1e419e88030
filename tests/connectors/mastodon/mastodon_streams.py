"""Running the Mastodon provider's stream in a test (importable by name, unlike a conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from caredesk.connectors.base import ConnectorError, FetchResult
from caredesk.connectors.builtin.mastodon import MastodonProvider


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
