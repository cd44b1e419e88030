"""The listening ladder in the runtime: which rung each installation uses now (:mod:`caredesk.connectors.ladder`
decides, from what is observed here: the allowed rungs, the stored rung states and the live stream leases).

The worker (:mod:`caredesk.connectors.tasks`) polls an installation only while its rung is *poll*, plus a cheap
catch-up poll every ``CAREDESK_CATCHUP_POLL_SECONDS`` while it is *webhook* (a missed delivery must not be lost; a
stream catches up by itself from its cursor when it connects). ``caredesk listen`` holds the streams that
:func:`~caredesk.connectors.ladder.may_stream` allows, and lets go of one once a webhook works or the stream
failed. The worker stores the rung in use (``listen_rung``) when it changes, for every enabled installation, every
time it looks for polls to run; health and the Connections page compute it afresh.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

from caredesk.connectors.actions import do_set_listen_rung
from caredesk.connectors.base import Capability, ConnectorError, Rung
from caredesk.connectors.crypto import CredentialsUnreadable
from caredesk.connectors.ladder import Choice, Ladder, choose, may_stream
from caredesk.connectors.models import ConnectorInstallation, ConnectorLease
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.runtime import get_provider


def allowed_rungs(installation: ConnectorInstallation) -> tuple[Rung, ...]:
    """What this installation may use (its provider's ``rungs()`` for its config and credentials); an
    installation whose provider cannot be built gets its provider's defaults, and an unknown provider only
    manual import (the failure itself is shown where it is used)."""
    try:
        return tuple(get_provider(installation).rungs())
    except (ConnectorError, CredentialsUnreadable, ValueError):
        pass
    try:
        cls = get_provider_class(installation.provider_key)
    except ConnectorError:
        return (Rung.IMPORT,)
    rungs = [r for r, c in ((Rung.WEBHOOK, Capability.WEBHOOK), (Rung.STREAM, Capability.STREAM),
                            (Rung.POLL, Capability.POLL)) if c in cls.capabilities]
    return (*rungs, Rung.IMPORT)


def held_streams(installation_ids: list[int] | None = None) -> set[int]:
    """Installations whose stream a ``caredesk listen`` process holds now (a live lease)."""
    leases = ConnectorLease.objects.filter(expires_at__gt=datetime.now(UTC))
    if installation_ids is not None:
        leases = leases.filter(installation_id__in=installation_ids)
    return set(leases.values_list("installation_id", flat=True))


def current_choice(installation: ConnectorInstallation, now: datetime, *, stream_held: bool,
                   allowed: tuple[Rung, ...] | None = None) -> Choice:
    allowed = allowed if allowed is not None else allowed_rungs(installation)
    return choose(allowed, Ladder.from_json(installation.ladder_state), now, stream_held=stream_held)


def poll_interval(installation: ConnectorInstallation) -> float:
    """Seconds between polls: ``CAREDESK_POLL_INTERVAL``, but never more often than the provider's platform allows
    (``Provider.min_poll_seconds``: its per-user rate limits, shared by every endpoint a poll asks)."""
    try:
        floor = get_provider_class(installation.provider_key).min_poll_seconds
    except ConnectorError:
        floor = 0.0
    return max(float(settings.CAREDESK_POLL_INTERVAL), floor)


def poll_due(installation: ConnectorInstallation, now: datetime, *, stream_held: bool) -> bool:
    """Whether the worker should poll this installation now, by its rung (the rung in use is stored on the way).

    Poll: every ``CAREDESK_POLL_INTERVAL``. Webhook: a catch-up poll every ``CAREDESK_CATCHUP_POLL_SECONDS``, where
    polling is allowed. Stream: never (it resumes from its cursor on connect, so the two never race on one cursor).
    """
    allowed = allowed_rungs(installation)
    choice = current_choice(installation, now, stream_held=stream_held, allowed=allowed)
    do_set_listen_rung(installation, choice)
    last = installation.last_polled_at
    if choice.rung == Rung.POLL:
        return last is None or (now - last).total_seconds() >= poll_interval(installation) * 0.5
    if choice.rung == Rung.WEBHOOK and Rung.POLL in allowed:
        return last is None or now - last >= timedelta(seconds=float(settings.CAREDESK_CATCHUP_POLL_SECONDS))
    return False


def should_stream(installation: ConnectorInstallation, now: datetime) -> bool:
    """Whether a ``caredesk listen`` should hold this installation's stream now."""
    return may_stream(allowed_rungs(installation), Ladder.from_json(installation.ladder_state), now)
