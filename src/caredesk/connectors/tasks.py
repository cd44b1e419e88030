"""Background polling of connector installations, on procrastinate.

One periodic job asks every enabled installation for new posts. Each installation is polled under
``SELECT … FOR UPDATE SKIP LOCKED``, so any number of workers on any number of machines share the work without
polling one installation twice, and the cursor is saved in the transaction that stores the posts.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.db import close_old_connections, transaction
from procrastinate.contrib.django import app

from caredesk.connectors.actions import do_record_poll_failure, do_record_poll_success
from caredesk.connectors.base import Capability, ConnectorError
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.runtime import get_provider
from caredesk.ingest.pipeline import ingest_posts

log = logging.getLogger(__name__)


def poll_installation(installation_id: int, now: datetime, http: httpx.Client | None = None) -> int | None:
    """Poll one installation. Returns the number of new posts, or None when another worker holds it."""
    try:
        with transaction.atomic():
            installation = (
                ConnectorInstallation.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("brand")
                .filter(pk=installation_id, enabled=True)
                .first()
            )
            if installation is None:
                return None
            if installation.last_polled_at and (
                (now - installation.last_polled_at).total_seconds() < settings.CAREDESK_POLL_INTERVAL * 0.5
            ):
                return 0
            provider = get_provider(installation, http)
            result = provider.fetch(installation.cursor, now)
            report = ingest_posts(installation, provider.platform, result.posts, now)
            do_record_poll_success(installation, result.cursor, report.received, now)
            for rejected in result.rejected:
                log.warning("installation %s: record %s rejected: %s", installation_id, rejected.position,
                            rejected.reason)
            return report.received
    except (ConnectorError, httpx.HTTPError) as exc:
        log.warning("installation %s: poll failed: %s", installation_id, exc)
        with transaction.atomic():
            installation = ConnectorInstallation.objects.select_for_update().get(pk=installation_id)
            do_record_poll_failure(installation, str(exc), now)
        return 0


def pollable_installation_ids() -> list[int]:
    ids = []
    for pk, key in ConnectorInstallation.objects.filter(enabled=True).values_list("pk", "provider_key"):
        try:
            cls = get_provider_class(key)
        except ConnectorError:
            continue
        if Capability.POLL in cls.capabilities:
            ids.append(pk)
    return ids


@app.periodic(cron="* * * * * */2", periodic_id="poll-connectors")
@app.task(name="connectors.poll_all", queue="connectors", queueing_lock="connectors.poll_all", pass_context=False)
def poll_all(timestamp: int) -> None:
    close_old_connections()
    try:
        with httpx.Client(timeout=20) as http:
            for installation_id in pollable_installation_ids():
                poll_installation(installation_id, datetime.now(UTC), http)
    finally:
        close_old_connections()
