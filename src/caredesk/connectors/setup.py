"""Connecting a brand to a platform, shared by the browser (``connectors.views``) and the CLI
(``connectors.commands``): validate, ask the platform who the credentials act as, then store.

The platform is asked outside any transaction; only the insert runs in one (the caller's request or command owns
nothing long-lived). Errors are :class:`SetupRefused` (fix the input) or :class:`PlatformUnreachable` (the input
may be fine; the platform did not answer), each with a message an admin can act on and never a credential in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from caredesk.accounts.models import Brand
from caredesk.connectors.actions import (
    _first_error,
    do_add_installation,
    do_learn_config,
    do_update_installation,
    lock_installation,
)
from caredesk.connectors.base import AuthRevoked, Capability, ConnectorError, Identity, Provider, RateLimited, Refused
from caredesk.connectors.crypto import CredentialsUnreadable
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class, providers
from caredesk.connectors.runtime import get_provider


class SetupRefused(Exception):
    """The connection cannot be made as given; the message says what to change."""


class PlatformUnreachable(Exception):
    """The platform did not answer as it should (down, rate limited, refusing); the message says what it said."""


def listening_providers() -> list[tuple[str, str]]:
    """(key, display name) of the providers an admin can connect (file import has its own command)."""
    live = {Capability.POLL, Capability.STREAM, Capability.WEBHOOK}
    return sorted(((k, cls.display_name) for k, cls in providers().items() if cls.capabilities & live),
                  key=lambda kv: kv[1].lower())


def _provider(provider_key: str, config: Mapping[str, Any], credentials: Mapping[str, Any]) -> Provider:  # type: ignore[type-arg]
    try:
        cls = get_provider_class(provider_key)
    except ConnectorError as exc:
        raise SetupRefused(str(exc)) from None
    try:
        parsed_config = cls.parse_config(config)
    except ValueError as exc:
        raise SetupRefused(f"invalid config for {provider_key}: {_first_error(exc)}") from None
    try:
        parsed_credentials = cls.parse_credentials(credentials)
    except ValueError as exc:
        raise SetupRefused(f"invalid credentials for {provider_key}: {_first_error(exc)}") from None
    return cls(parsed_config, parsed_credentials.to_storage(), None)


@contextlib.contextmanager
def _asking_the_platform() -> Iterator[None]:
    """The platform's typed errors as the two an admin can act on."""
    try:
        yield
    except AuthRevoked as exc:
        raise SetupRefused(f"the platform refused the credentials: {exc}") from None
    except RateLimited as exc:
        raise PlatformUnreachable(f"rate limited until {exc.retry_at:%H:%M:%S} UTC: {exc}") from None
    except ConnectorError as exc:
        raise PlatformUnreachable(str(exc)) from None


def _ask(provider: Provider) -> Identity | None:  # type: ignore[type-arg]
    with _asking_the_platform():
        return provider.whoami()


def add_connection(
    brand: Brand,
    provider_key: str,
    name: str,
    config: Mapping[str, Any],
    credentials: Mapping[str, Any],
    *,
    check: bool = True,
) -> ConnectorInstallation:
    """Validate, ask the platform (unless ``check`` is off), then store the installation."""
    provider = _provider(provider_key, config, credentials)
    identity = _ask(provider) if check else None
    if check:
        config = {**provider.learned_config(), **config}
    try:
        with transaction.atomic():
            return do_add_installation(brand, provider_key, name, config, credentials, identity)
    except ConnectorError as exc:
        raise SetupRefused(str(exc)) from None


def update_connection(
    installation: ConnectorInstallation,
    *,
    config: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None,
    check: bool = True,
) -> ConnectorInstallation:
    """Change a connection's config (``config`` is merged over the current one, so editing the listening rules
    needs only them) and/or replace its credentials; new credentials are checked with the platform first unless
    ``check`` is off. A running stream reconnects with the change; nothing restarts."""
    merged = {**installation.config, **(config or {})}
    try:
        current = installation.get_credentials()
    except CredentialsUnreadable:
        if credentials is None:
            raise SetupRefused("the stored credentials cannot be decrypted here: give new ones") from None
        current = {}
    provider = _provider(installation.provider_key, merged, credentials if credentials is not None else current)
    if credentials is not None and check:
        _ask(provider)
    with transaction.atomic():
        locked = lock_installation(installation.pk)
        try:
            return do_update_installation(
                locked, config=merged if config is not None else None,
                credentials=provider.credentials if credentials is not None else None,
            )
        except ConnectorError as exc:
            raise SetupRefused(str(exc)) from None


def reconnect_account(installation: ConnectorInstallation, credentials: Mapping[str, Any]) -> Identity | None:
    """Credentials from the platform's own login (X's OAuth): asked who they act as, refused when that is another
    account than the connection's (a mix-up that would answer customers from the wrong account), then stored,
    lifting an auth-revoked stop."""
    provider = _provider(installation.provider_key, installation.config, credentials)
    identity = _ask(provider)
    own = set(installation.own_account_ids or ())
    if identity is not None and own and not own & set(identity.account_ids):
        who = ", ".join("@" + h for h in identity.handles) or ", ".join(identity.account_ids)
        mine = ", ".join("@" + h for h in installation.own_handles or ()) or ", ".join(sorted(own))
        raise SetupRefused(f"these credentials act as {who}, but {installation.name!r} is connected as {mine}: log "
                           "in as that account, or add a new connection")
    with transaction.atomic():
        locked = lock_installation(installation.pk)
        try:
            do_update_installation(locked, credentials=provider.credentials)
        except ConnectorError as exc:
            raise SetupRefused(str(exc)) from None
    return identity


@dataclass(frozen=True, slots=True)
class TestReport:
    identity: Identity | None
    fetched: int | None  # posts a poll would bring now (None: the provider does not poll)
    changes: int = 0
    rejected: int = 0

    def lines(self) -> list[str]:
        out = []
        if self.identity is not None:
            who = ", ".join("@" + h for h in self.identity.handles) or ", ".join(self.identity.account_ids)
            out.append(f"credentials work: {who}")
        if self.fetched is not None:
            out.append(f"fetched {self.fetched} posts and {self.changes} changes (not stored), "
                       f"{self.rejected} rejected")
        return out


def test_connection(installation: ConnectorInstallation) -> TestReport:
    """Ask the platform again and fetch once, storing nothing."""
    try:
        provider = get_provider(installation)
    except (ConnectorError, CredentialsUnreadable) as exc:
        raise SetupRefused(str(exc)) from None
    identity = _ask(provider)
    if Capability.POLL not in provider.capabilities:
        return TestReport(identity, None)
    with _asking_the_platform():
        result = provider.fetch(dict(installation.cursor), datetime.now(UTC))
    return TestReport(identity, len(result.posts), len(result.changes), len(result.rejected))


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, whatever its name


def subscribe_connection(installation: ConnectorInstallation) -> list[str]:
    """Make the platform deliver to this installation, where it has something to set up for that (X: the webhook
    registered and the Activity API subscriptions, ``XProvider.subscribe``); idempotent. What it learned (the
    webhook's id) is stored in the config. The platform is asked outside any transaction. Lines to show."""
    try:
        provider = get_provider(installation)
    except (ConnectorError, CredentialsUnreadable) as exc:
        raise SetupRefused(str(exc)) from None
    subscribe = getattr(provider, "subscribe", None)
    if not callable(subscribe):
        raise SetupRefused(f"{installation.provider_key} has no subscriptions to make: it is polled or streamed "
                           "without them")
    with _asking_the_platform():
        try:
            report = subscribe(datetime.now(UTC))
        except Refused as exc:  # X's own reason (or ours): the input must change, not a retry
            raise SetupRefused(str(exc)) from None
    lines = [str(line) for line in report.lines()]
    learned = dict(report.learned())
    with transaction.atomic():
        locked = lock_installation(installation.pk)
        try:
            changed = do_learn_config(locked, learned)
        except ConnectorError as exc:
            raise SetupRefused(str(exc)) from None
    if changed:
        stored = ", ".join(f"{k} {v}" for k, v in learned.items())
        lines.append(f"stored {stored} in the settings (a running listener picks it up without a restart)")
    return lines
