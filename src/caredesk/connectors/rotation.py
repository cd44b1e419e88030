"""Credentials a platform rotates outside a poll (X renews its access token with a single-use refresh token):
whoever renews must store the new pair, or the connection is lost.

A poll hands them back in its FetchResult. The outbox's calls (send, find) go through :class:`Rotation`: for a
provider that ``rotates_credentials`` it takes the installation's poll lock (without waiting), reads the stored
credentials afresh under it and lets the provider renew (``hand_back_rotated``); whatever the provider rotated is
stored in its own short transaction right after the call, before the lock is released. So a poll, a sweep and a
send never renew with the same refresh token at once. Where the lock is busy (a poll runs), the provider does not
renew: an expired token then waits for that poll, as before. A crash between the platform's answer and the store
loses the new pair, as it would in a poll: the connection then asks for a reconnect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from django.db import transaction

from caredesk.connectors.actions import do_store_rotated_credentials, lock_installation
from caredesk.connectors.base import Provider
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.runtime import get_provider
from caredesk.connectors.tasks import _try_lock, _unlock


class Rotation:
    def __init__(self) -> None:
        self.locked_id: int | None = None
        self._provider: Provider | None = None  # type: ignore[type-arg]
        self._stored: Mapping[str, Any] | None = None

    def provider(self, installation: ConnectorInstallation, http: httpx.Client | None = None) -> Provider:  # type: ignore[type-arg]
        if self.locked_id is None and get_provider_class(installation.provider_key).rotates_credentials \
                and _try_lock(installation.pk):
            self.locked_id = installation.pk
            # Under the lock: the pair a poll may have just stored, not the one read before.
            installation = ConnectorInstallation.objects.select_related("brand").get(pk=installation.pk)
        provider = get_provider(installation, http)
        provider.hand_back_rotated = self.locked_id is not None
        self._provider = provider
        return provider

    def store(self) -> None:
        """Store what the provider rotated so far (nothing when it rotated nothing new). Outside a transaction."""
        if self.locked_id is None or self._provider is None:
            return
        rotated = self._provider.rotated_credentials()
        if rotated is None or rotated == self._stored:
            return
        with transaction.atomic():
            do_store_rotated_credentials(lock_installation(self.locked_id), rotated)
        self._stored = dict(rotated)

    def close(self) -> None:
        try:
            self.store()
        finally:
            if self.locked_id is not None:
                _unlock(self.locked_id)
                self.locked_id = None
