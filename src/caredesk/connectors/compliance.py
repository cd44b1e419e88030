"""Compliance sweeps: for a platform that sends no deletion or edit events but requires that they be honoured
(X: within 24 hours), ask it about the posts received in its ``compliance_window()`` and apply what it says
through the one change path (``processing.apply_result``: a deleted post's text is removed, an edit replaces it).

A periodic job (hourly, ``connectors.tasks.compliance_all``) defers one sweep per installation whose provider is
a :class:`ComplianceSweeper` and whose last complete sweep is older than the provider's ``compliance_every()``.
Each batch of a sweep takes the installation's poll lock for its call and its store (a poll and a sweep never
renew a rotating token at the same time; polls go on between batches), asks outside any transaction, and stores
the batch's changes, usage and rotated credentials in one short transaction. Every batch's reads obey the budget
first: a budget stop ends the sweep (shown in health) and the sweep starts again at the next run; a failure is
logged and retried at the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime

import httpx
from django.db import transaction
from procrastinate.exceptions import AlreadyEnqueued

from caredesk.cases.models import Post
from caredesk.connectors.actions import do_record_compliance_sweep, lock_installation
from caredesk.connectors.base import ComplianceSweeper, ConnectorError, FetchResult, PostChange, PostEdited
from caredesk.connectors.costs.ledger import budget_stop, do_record_budget_stop
from caredesk.connectors.costs.prices import Operation
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.processing import apply_result
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.runtime import get_provider
from caredesk.connectors.tasks import _try_lock, _unlock

log = logging.getLogger(__name__)
LOCK_TRIES = 40
LOCK_WAIT_SECONDS = 0.25
BUSY = "polls kept the installation busy: the next run sweeps again"


@dataclasses.dataclass(frozen=True, slots=True)
class SweepReport:
    checked: int
    edited: int
    deleted: int
    stopped: str = ""  # why the sweep ended early (the budget); empty when complete


def _relevant(changes: list[PostChange], stored: dict[str, tuple[str, bool]]) -> list[PostChange]:
    """Edits whose text differs from the stored one (X reports the newest version of an edited post on every
    sweep), keeping the stored ``summoned``: whether the author addressed the brand is the desk's finding."""
    kept: list[PostChange] = []
    for change in changes:
        if isinstance(change, PostEdited):
            text, summoned = stored.get(change.post.external_id, ("", True))
            if change.post.text == text:
                continue
            change = PostEdited(dataclasses.replace(change.post, summoned=summoned))
        kept.append(change)
    return kept


def _lock_soon(installation_id: int) -> bool:
    """The poll lock, waiting a little for a poll that holds it (a poll takes a second or so)."""
    for _ in range(LOCK_TRIES):
        if _try_lock(installation_id):
            return True
        time.sleep(LOCK_WAIT_SECONDS)
    return False


def _usable(installation_id: int, now: datetime) -> ConnectorInstallation | None:
    installation = ConnectorInstallation.objects.select_related("brand").filter(
        pk=installation_id, enabled=True, auth_revoked_at=None).first()
    if installation is None or (installation.retry_at and installation.retry_at > now):
        return None  # disabled, revoked, rate limited or backing off: the next run tries again
    return installation


def sweep_installation(installation_id: int, now: datetime, http: httpx.Client | None = None) -> SweepReport | None:
    """Sweep one installation now (whether due or not); None when it cannot be swept now (disabled, revoked,
    backing off). Each batch takes the poll lock for its own call and store only, so polls go on between
    batches, and reads the credentials afresh under it (a poll may have rotated them). Must not run inside a
    transaction."""
    installation = _usable(installation_id, now)
    if installation is None:
        return None
    sweeper = get_provider(installation, http)
    if not isinstance(sweeper, ComplianceSweeper):
        return None
    since = now - sweeper.compliance_window()
    rows = (Post.objects.filter(installation_id=installation_id, received_at__gte=since, deleted_at__isnull=True,
                                is_direct=False)
            .order_by("pk").values_list("external_id", "text", "summoned"))
    stored = {external_id: (text, summoned) for external_id, text, summoned in rows if external_id.isdigit()}
    ids = list(stored)
    size = sweeper.compliance_batch
    checked = edited = deleted = 0
    for start in range(0, len(ids), size):
        if not _lock_soon(installation_id):
            return SweepReport(checked, edited, deleted, stopped=BUSY)
        try:
            installation = _usable(installation_id, now)
            if installation is None:
                return None
            stop = budget_stop(installation, Operation.POST_READ, now)
            if stop is not None:
                with transaction.atomic():
                    do_record_budget_stop(lock_installation(installation_id), stop, now)
                return SweepReport(checked, edited, deleted, stopped=stop)
            provider = get_provider(installation, http)
            assert isinstance(provider, ComplianceSweeper)
            batch = ids[start:start + size]
            result = provider.compliance_sweep(batch, now)  # the network call: outside any transaction
            changes = _relevant(list(result.changes), stored)
            with transaction.atomic():
                report = apply_result(lock_installation(installation_id), provider.platform, FetchResult(
                    posts=[], cursor={}, changes=changes, credentials=result.credentials, usage=result.usage,
                ), now, save_cursor=False)
        finally:
            _unlock(installation_id)
        checked += len(batch)
        edited += report.edited
        deleted += report.deleted
    with transaction.atomic():
        do_record_compliance_sweep(lock_installation(installation_id), now)
    if edited or deleted:
        log.info("installation %s: compliance sweep of %s posts: %s edited, %s deleted", installation_id,
                 checked, edited, deleted)
    return SweepReport(checked, edited, deleted)


def due_installation_ids(now: datetime) -> list[int]:
    """Enabled installations whose provider sweeps and whose last complete sweep is older than its interval."""
    due = []
    rows = ConnectorInstallation.objects.filter(enabled=True, auth_revoked_at=None)
    for installation in rows.only("pk", "provider_key", "config", "compliance_swept_at"):
        try:
            cls = get_provider_class(installation.provider_key)
            if not hasattr(cls, "compliance_sweep"):
                continue
            provider = cls(cls.parse_config(installation.config), {})  # its config alone says when
        except (ConnectorError, ValueError):
            continue
        if not isinstance(provider, ComplianceSweeper):
            continue
        last = installation.compliance_swept_at
        if last is None or now - last >= provider.compliance_every():
            due.append(installation.pk)
    return due


def defer_sweeps(now: datetime) -> int:
    """Defer a sweep job for every due installation that has none waiting; returns how many were deferred."""
    from caredesk.connectors.tasks import sweep_one

    deferred = 0
    for installation_id in due_installation_ids(now):
        try:
            with transaction.atomic():  # a savepoint: the refused insert must not abort the caller's transaction
                sweep_one.configure(queueing_lock=f"compliance:{installation_id}").defer(
                    installation_id=installation_id)
            deferred += 1
        except AlreadyEnqueued:
            pass
    return deferred
