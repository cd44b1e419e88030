"""Turn ``DATABASE_URL`` (and the optional pool, PgBouncer and replica settings) into Django's DATABASES.

PostgreSQL only: there is deliberately no SQLite path. The embedded server is started by the CLI
(:mod:`caredesk.config.embedded`), which then exports its URL as ``DATABASE_URL`` so the web server, the worker
and the tests all read one variable.

For an external server everything libpq knows passes through the URL's query unchanged
(``?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem&connect_timeout=5&application_name=web-1``). The rest is read
from the environment here, in one place (docs/deployment.md explains when to use which):

- ``CAREDESK_DB_POOL_MAX`` (default 0, off): keep a psycopg connection pool of at most this many connections per
  process (Django's ``OPTIONS["pool"]``), ``CAREDESK_DB_POOL_MIN`` (default 1) of them open, waiting at most
  ``CAREDESK_DB_POOL_TIMEOUT`` seconds (default 10) for a free one. Saves a connection set-up (a few ms, more with
  TLS) on every request.
- ``CAREDESK_DB_PGBOUNCER=1``: ``DATABASE_URL`` is a PgBouncer in *transaction* pooling mode: no server-side
  cursors (a cursor would outlive the transaction PgBouncer gives the connection for). Only for web servers:
  workers take session-level advisory locks and LISTEN, which transaction pooling breaks.
- ``DATABASE_DIRECT_URL``: where the live stream's LISTEN connection goes when ``DATABASE_URL`` is a transaction
  pooler (LISTEN needs a session of its own). Default: ``DATABASE_URL``.
- ``DATABASE_REPLICA_URL``: a read replica, as the ``replica`` alias, used only inside
  :func:`caredesk.config.replica.replica_reads` (read-only reporting: metrics now, analytics later).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

REPLICA = "replica"


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


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def pool_options(env: Mapping[str, str]) -> dict[str, Any] | None:
    """psycopg_pool's arguments from the environment, or None when pooling is off."""
    max_size = _int(env, "CAREDESK_DB_POOL_MAX", 0)
    if max_size == 0:
        return None
    min_size = _int(env, "CAREDESK_DB_POOL_MIN", 1)
    if min_size > max_size:
        raise ImproperlyConfigured(
            f"CAREDESK_DB_POOL_MIN ({min_size}) must not exceed CAREDESK_DB_POOL_MAX ({max_size})"
        )
    timeout = float(env.get("CAREDESK_DB_POOL_TIMEOUT", "").strip() or 10)
    return {"min_size": min_size, "max_size": max_size, "timeout": timeout}


def database_settings(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Django's DATABASES for this environment (see the module's docstring for the variables)."""
    url = env.get("DATABASE_URL", "")
    if not url:
        # No server configured: Django fails with a clear message on first query. The `caredesk` command always
        # sets DATABASE_URL (to an embedded pgserver when none is given), so this only happens in bare imports.
        return {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "caredesk_unconfigured"}}
    default = parse_database_url(url)
    pool = pool_options(env)
    if pool is not None:
        default["OPTIONS"]["pool"] = pool
    if _flag(env, "CAREDESK_DB_PGBOUNCER"):
        default["DISABLE_SERVER_SIDE_CURSORS"] = True
    databases = {"default": default}
    replica_url = env.get("DATABASE_REPLICA_URL", "").strip()
    if replica_url:
        replica = parse_database_url(replica_url)
        if pool is not None:
            replica["OPTIONS"]["pool"] = {**pool, "min_size": 0}
        # Under tests the replica is the test database itself: no second test database is made for it.
        replica["TEST"] = {"MIRROR": "default"}
        databases[REPLICA] = replica
    return databases


def direct_database(env: Mapping[str, str]) -> dict[str, Any] | None:
    """``DATABASE_DIRECT_URL`` parsed, for connections that need a session of their own (LISTEN)."""
    url = env.get("DATABASE_DIRECT_URL", "").strip()
    return parse_database_url(url) if url else None
