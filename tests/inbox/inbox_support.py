"""Shared constants for the inbox tests (importable from test modules, unlike conftest)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from caredesk.cases.models import Case
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.runtime import get_provider
from factories import ingest

# Headers of a request made by htmx (the partial-rendering path of the views).
HX: dict[str, str] = {"HX-Request": "true"}

MakeCase = Callable[..., Case]


def seed_demo(installation: ConnectorInstallation, now: datetime, seconds: float = 400) -> list[Case]:
    """Fill the inbox with the first ``seconds`` of the bundled replay script (realistic posts, threads and brand
    replies), as if the show had started that long ago. Returns the cases, newest first."""
    provider = get_provider(installation)
    started = now - timedelta(seconds=seconds)
    result = provider.fetch({"started_at": started.isoformat(), "position": 0, "loop": 1}, now)
    ingest(installation, *result.posts, now=now)
    return list(Case.objects.filter(brand=installation.brand).order_by("-last_inbound_at"))
