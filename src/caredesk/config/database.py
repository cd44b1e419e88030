"""Turn ``DATABASE_URL`` into Django's DATABASES entry.

PostgreSQL only: there is deliberately no SQLite path. The embedded server is started by the CLI
(:mod:`caredesk.config.embedded`), which then exports its URL as ``DATABASE_URL`` so the web server, the worker
and the tests all read one variable.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def parse_database_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a postgresql:// URL (caredesk runs on PostgreSQL only), got scheme {parts.scheme!r}"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    # libpq puts a unix-socket directory in ?host=...; it wins over the (empty) netloc host.
    host = query.pop("host", None) or (unquote(parts.hostname) if parts.hostname else "")
    name = unquote(parts.path.lstrip("/")) or "postgres"
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username) if parts.username else "",
        "PASSWORD": unquote(parts.password) if parts.password else "",
        "HOST": host,
        "PORT": str(parts.port) if parts.port else "",
        "CONN_MAX_AGE": 0,
        "OPTIONS": query,
        # The test suite's plugin gives each run its own database so concurrent runs don't collide.
        "TEST": {"NAME": os.environ.get("CAREDESK_TEST_DATABASE") or f"test_{name}"},
    }
