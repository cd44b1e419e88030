"""Shared constants for the inbox tests (importable from test modules, unlike conftest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

from caredesk.cases.models import Case
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.runtime import get_provider
from factories import ingest

# Headers of a request made by htmx (the partial-rendering path of the views).
HX: dict[str, str] = {"HX-Request": "true"}

MakeCase = Callable[..., Case]
T = TypeVar("T")


def parse_sse(chunk: str | bytes) -> dict[str, Any]:
    """One Server-Sent Events message as its fields (``data`` decoded from JSON; a comment as ``comment``)."""
    text = chunk.decode() if isinstance(chunk, bytes) else chunk
    fields: dict[str, Any] = {}
    for line in text.strip("\n").split("\n"):
        if line.startswith(":"):
            fields.setdefault("comment", line[1:].strip())
            continue
        key, _, value = line.partition(": ")
        fields[key] = value
    if "data" in fields:
        fields["data"] = json.loads(fields["data"])
    return fields


def in_thread(fn: Callable[[], T]) -> Callable[[], Any]:
    """``fn`` as a coroutine function run in a worker thread with its own connection, closed afterwards (so the
    test database can be dropped at the end of the session)."""

    def run() -> T:
        try:
            return fn()
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


def seed_demo(installation: ConnectorInstallation, now: datetime, seconds: float = 400) -> list[Case]:
    """Fill the inbox with the first ``seconds`` of the bundled replay script (realistic posts, threads and brand
    replies), as if the show had started that long ago. Returns the cases, newest first."""
    provider = get_provider(installation)
    started = now - timedelta(seconds=seconds)
    result = provider.fetch({"started_at": started.isoformat(), "position": 0, "loop": 1}, now)
    ingest(installation, *result.posts, now=now)
    return list(Case.objects.filter(brand=installation.brand).order_by("-last_inbound_at"))
