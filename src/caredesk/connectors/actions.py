"""Writes for connector installations: creation, cursors, health and the listening ladder."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from caredesk.accounts.models import Brand
from caredesk.connectors.base import ConnectorError, Identity, Rung
from caredesk.connectors.ladder import Choice, Ladder
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class

log = logging.getLogger(__name__)

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
    installation.config_version += 1  # a running stream notices and stops (or, enabled, is started)
    installation.save(update_fields=["enabled", "config_version"])


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


def do_record_poll_failure(
    installation: ConnectorInstallation, error: str, now: datetime, *, retry_at: datetime | None = None
) -> None:
    """A poll failed: counted, shown, and no poll before ``retry_at`` (the platform's rate limit, or back-off)."""
    installation.last_polled_at = now
    do_record_failure(installation, error, now, retry_at=retry_at)
    installation.save(update_fields=["last_polled_at"])


def do_record_failure(
    installation: ConnectorInstallation, error: str, now: datetime, *, retry_at: datetime | None = None
) -> None:
    """A poll or a stream connection failed: counted, shown, and nothing contacts the platform for this
    installation before ``retry_at``."""
    installation.consecutive_failures += 1
    installation.last_error = error[:2000]
    installation.retry_at = retry_at
    installation.health = (
        ConnectorInstallation.Health.FAILING
        if installation.consecutive_failures >= FAILING_AFTER
        else ConnectorInstallation.Health.DEGRADED
    )
    installation.save(update_fields=["consecutive_failures", "last_error", "health", "retry_at"])


def do_record_auth_revoked(installation: ConnectorInstallation, error: str, now: datetime) -> None:
    """The platform refused the credentials: failing, and nothing retries until an admin changes them
    (:func:`do_update_installation` clears the mark)."""
    installation.auth_revoked_at = now
    installation.consecutive_failures += 1
    installation.health = ConnectorInstallation.Health.FAILING
    installation.last_error = (f"the platform refused the credentials ({error[:1500]}); an admin must change them "
                               "before this installation is contacted again")
    installation.save(update_fields=["auth_revoked_at", "consecutive_failures", "health", "last_error"])


def do_record_batch(
    installation: ConnectorInstallation,
    *,
    cursor: Mapping[str, Any] | None,
    received: int,
    changed: int,
    newest_post_at: datetime | None,
    credentials: Mapping[str, Any] | None,
    rate_limit_remaining: int | None,
    now: datetime,
    polled: bool = False,
) -> None:
    """A batch was stored: its cursor (None: keep the saved one), rotated credentials, and health, in the
    transaction that stored its posts, so a crash can neither skip nor repeat. Precondition: the row is locked."""
    fields = ["last_success_at", "health", "last_error", "consecutive_failures", "posts_received", "retry_at"]
    if cursor is not None:
        installation.cursor = dict(cursor)
        fields.append("cursor")
    if polled:
        installation.last_polled_at = now
        fields.append("last_polled_at")
    if received or changed:
        installation.last_event_at = now
        fields.append("last_event_at")
    newest = installation.newest_post_at
    if newest_post_at is not None and (newest is None or newest_post_at > newest):
        installation.newest_post_at = newest_post_at
        fields.append("newest_post_at")
    if credentials is not None:
        installation.set_credentials(dict(credentials))
        fields.append("credentials_encrypted")
    if rate_limit_remaining is not None:
        installation.rate_limit_remaining = rate_limit_remaining
        fields.append("rate_limit_remaining")
    installation.last_success_at = now
    installation.health = ConnectorInstallation.Health.OK
    installation.last_error = ""
    installation.consecutive_failures = 0
    installation.retry_at = None
    installation.posts_received += received
    installation.save(update_fields=fields)


def do_record_warning(installation: ConnectorInstallation, warning: str) -> None:
    """A batch was stored but a part of the read failed (one source of several): degraded, with the reason shown,
    and no back-off (what did work goes on). Precondition: the row is locked; after :func:`do_record_batch`."""
    installation.health = ConnectorInstallation.Health.DEGRADED
    installation.last_error = warning[:2000]
    installation.save(update_fields=["health", "last_error"])


def do_update_installation(
    installation: ConnectorInstallation,
    *,
    config: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None,
    enabled: bool | None = None,
) -> ConnectorInstallation:
    """An admin's change of config, credentials or enabled. Bumps ``config_version``, so a running stream
    reconnects with it; new credentials lift an :func:`do_record_auth_revoked` stop and the back-off.
    Precondition: the row is locked (:func:`lock_installation`)."""
    fields = ["config_version"]
    if config is not None:
        cls = get_provider_class(installation.provider_key)
        try:
            parsed = cls.parse_config(config)
        except ValueError as exc:
            raise ConnectorError(f"invalid config for {installation.provider_key}: {exc}") from exc
        installation.config = parsed.model_dump(mode="json", exclude_none=True)
        fields.append("config")
    if credentials is not None:
        installation.set_credentials(dict(credentials))
        installation.auth_revoked_at = None
        installation.retry_at = None
        installation.consecutive_failures = 0
        installation.health = ConnectorInstallation.Health.UNKNOWN
        # New credentials (an app enrolled at last) may be what a refused rung lacked: try every rung again.
        installation.ladder_state = Ladder.from_json(installation.ladder_state).cleared().to_json()
        fields += ["credentials_encrypted", "auth_revoked_at", "retry_at", "consecutive_failures", "health",
                   "ladder_state"]
    if enabled is not None:
        installation.enabled = enabled
        fields.append("enabled")
    installation.config_version += 1
    installation.save(update_fields=fields)
    return installation


def do_store_rotated_credentials(installation: ConnectorInstallation, credentials: Mapping[str, Any]) -> None:
    """Credentials the platform rotated outside a poll (an OAuth refresh during a send): the same account, so a
    running stream need not reconnect (``config_version`` unchanged). Precondition: the row is locked."""
    installation.set_credentials(dict(credentials))
    installation.save(update_fields=["credentials_encrypted"])


def do_record_compliance_sweep(installation: ConnectorInstallation, now: datetime) -> None:
    """A compliance sweep of the installation's stored posts finished. Precondition: the row is locked."""
    installation.compliance_swept_at = now
    installation.save(update_fields=["compliance_swept_at"])
def do_learn_config(installation: ConnectorInstallation, learned: Mapping[str, Any]) -> bool:
    """Settings the platform told (an X webhook's id) merged into the config, checked like an admin's change; bumps
    ``config_version`` when anything changed, so a running stream reconnects with it. Whether it changed.
    Precondition: the row is locked (:func:`lock_installation`)."""
    merged = {**installation.config, **learned}
    if merged == installation.config:
        return False
    do_update_installation(installation, config=merged)
    return True


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


def _ladder_retry() -> timedelta:
    return timedelta(seconds=float(settings.CAREDESK_RUNG_RETRY_SECONDS))


def _save_ladder(installation: ConnectorInstallation, ladder: Ladder) -> None:
    installation.ladder_state = ladder.to_json()
    installation.save(update_fields=["ladder_state"])


def do_record_rung_ok(installation: ConnectorInstallation, rung: Rung, now: datetime) -> None:
    """``rung`` worked (a verified webhook delivery or challenge, a stream batch, a poll): its failures are
    forgotten. Written at most once a minute while nothing else changes. Precondition: the row is locked."""
    ladder = Ladder.from_json(installation.ladder_state)
    if ladder.needs_write(rung, now):
        _save_ladder(installation, ladder.worked(rung, now))


def do_record_rung_refused(installation: ConnectorInstallation, rung: Rung, reason: str, now: datetime) -> None:
    """The platform refused ``rung`` (a stream for an app not enrolled, a poll without access): the runtime
    leaves it for a while (``CAREDESK_RUNG_RETRY_SECONDS``, doubled each time) and uses the next rung down.
    Precondition: the row is locked."""
    ladder = Ladder.from_json(installation.ladder_state).refused(rung, reason, now, retry=_ladder_retry())
    _save_ladder(installation, ladder)
    log.warning("installation %s: %s %s", installation.pk, rung.value, ladder[rung].reason)


def do_record_rung_failure(installation: ConnectorInstallation, rung: Rung, reason: str, now: datetime,
                           allowed: Sequence[Rung]) -> bool:
    """One more failure of ``rung`` in a row; True when that made it fall (held failed for a while, the next rung
    down used meanwhile). Precondition: the row is locked."""
    ladder = Ladder.from_json(installation.ladder_state).failed_once(rung, reason, now, allowed,
                                                                     retry=_ladder_retry())
    _save_ladder(installation, ladder)
    fell = ladder[rung].failed(now)
    if fell:
        log.warning("installation %s: %s %s", installation.pk, rung.value, ladder[rung].reason)
    return fell


def do_set_listen_rung(installation: ConnectorInstallation, choice: Choice) -> None:
    """Store the rung in use where it changed (a fall or a climb, logged with the reasons)."""
    if installation.listen_rung == choice.rung.value:
        return
    log.info("installation %s: listening by %s now%s", installation.pk, choice.rung.value,
             f" ({'; '.join(choice.reasons)})" if choice.reasons else "")
    installation.listen_rung = choice.rung.value
    ConnectorInstallation.objects.filter(pk=installation.pk).update(listen_rung=choice.rung.value)
