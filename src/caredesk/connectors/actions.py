"""Writes for connector installations: creation, cursors and health."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from caredesk.accounts.models import Brand
from caredesk.connectors.base import ConnectorError, Identity
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class

# After this many failures in a row an installation is shown as failing rather than degraded.
FAILING_AFTER = 3


def lock_installation(installation_id: int) -> ConnectorInstallation:
    """The installation row locked for the caller's transaction, so one ingest of it runs at a time.

    ``FOR NO KEY UPDATE`` of that row alone: a plain ``FOR UPDATE`` (or one that also locks the joined brand) would
    block every other transaction that inserts a row pointing at the installation or the brand (a sent reply's
    outbound post, an activity) while this one waits for a case such a transaction holds: a deadlock.
    """
    return (
        ConnectorInstallation.objects.select_related("brand")
        .select_for_update(no_key=True, of=("self",))
        .get(pk=installation_id)
    )


def do_create_installation(
    brand: Brand,
    provider_key: str,
    name: str,
    config: Mapping[str, Any],
    credentials: Mapping[str, Any] | None = None,
    own_account_ids: list[str] | None = None,
    own_handles: list[str] | None = None,
) -> ConnectorInstallation:
    cls = get_provider_class(provider_key)
    try:
        parsed = cls.parse_config(config)
    except ValueError as exc:
        raise ConnectorError(f"invalid config for {provider_key}: {_first_error(exc)}") from exc
    installation = ConnectorInstallation(
        brand=brand,
        provider_key=provider_key,
        name=name,
        config=parsed.model_dump(mode="json", exclude_none=True),
        own_account_ids=list(own_account_ids or []),
        own_handles=[h.lstrip("@") for h in own_handles or []],
    )
    installation.set_credentials(dict(credentials or {}))
    installation.save()
    return installation


def do_add_installation(
    brand: Brand,
    provider_key: str,
    name: str,
    config: Mapping[str, Any],
    credentials: Mapping[str, Any],
    identity: Identity | None,
) -> ConnectorInstallation:
    """A new installation, its credentials checked against the provider's model and stored encrypted, and the
    brand's own account ids and handles taken from ``identity`` (what ``whoami`` said), never typed by hand."""
    name = " ".join(name.split())
    if not name or len(name) > 120:
        raise ConnectorError("an installation name needs 1 to 120 characters")
    if ConnectorInstallation.objects.filter(brand=brand, name=name).exists():
        raise ConnectorError(f"brand {brand.slug} already has an installation called {name!r}")
    cls = get_provider_class(provider_key)
    try:
        creds = cls.parse_credentials(credentials).to_storage()
    except ValueError as exc:
        raise ConnectorError(f"invalid credentials for {provider_key}: {_first_error(exc)}") from exc
    return do_create_installation(
        brand, provider_key, name, config, creds,
        own_account_ids=list(identity.account_ids) if identity else None,
        own_handles=list(identity.handles) if identity else None,
    )


def _first_error(exc: ValueError) -> str:
    """A pydantic error without the input it echoes (credentials must not be printed)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors()]
        return "; ".join(parts) or "invalid"
    return str(exc)


def do_set_enabled(installation: ConnectorInstallation, enabled: bool) -> None:
    installation.enabled = enabled
    installation.save(update_fields=["enabled"])


def do_record_poll_success(
    installation: ConnectorInstallation, cursor: Mapping[str, Any], received: int, now: datetime
) -> None:
    """Save the cursor in the same transaction as the posts it covers, so a crash can neither skip nor repeat."""
    installation.cursor = dict(cursor)
    installation.last_polled_at = now
    installation.last_success_at = now
    installation.health = ConnectorInstallation.Health.OK
    installation.last_error = ""
    installation.consecutive_failures = 0
    installation.posts_received += received
    installation.save(
        update_fields=["cursor", "last_polled_at", "last_success_at", "health", "last_error",
                       "consecutive_failures", "posts_received"]
    )


def do_record_poll_failure(installation: ConnectorInstallation, error: str, now: datetime) -> None:
    installation.last_polled_at = now
    installation.consecutive_failures += 1
    installation.last_error = error[:2000]
    installation.health = (
        ConnectorInstallation.Health.FAILING
        if installation.consecutive_failures >= FAILING_AFTER
        else ConnectorInstallation.Health.DEGRADED
    )
    installation.save(update_fields=["last_polled_at", "consecutive_failures", "last_error", "health"])


def do_record_import(installation: ConnectorInstallation, received: int, now: datetime) -> None:
    installation.last_success_at = now
    installation.posts_received += received
    installation.health = ConnectorInstallation.Health.OK
    installation.save(update_fields=["last_success_at", "posts_received", "health"])


def do_rotate_credentials(installation: ConnectorInstallation) -> None:
    """Re-encrypt the credentials with the newest key. Precondition: the row is locked."""
    from caredesk.connectors.crypto import rotate

    if installation.credentials_encrypted:
        installation.credentials_encrypted = rotate(installation.credentials_encrypted)
        installation.save(update_fields=["credentials_encrypted"])
