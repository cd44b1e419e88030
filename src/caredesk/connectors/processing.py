"""Storing what a platform delivered, and processing it: the one path for polled, streamed and webhook batches.

A stream batch or a webhook delivery is first stored raw (:func:`store_payload`, one insert, committed), then
processed (:func:`process_payload`): posts ingested, edits and deletions applied, rotated credentials and the
cursor saved, in one short transaction. A fault in processing rolls that back and marks the payload *failed* with
its error; the payload itself is never lost, an admin sees it (``caredesk connector payloads --failed``) and
processes it again (``caredesk connector retry``), which re-runs exactly the same processing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F

from caredesk.connectors.actions import do_record_batch, do_record_warning, lock_installation
from caredesk.connectors.base import FetchResult, WebhookReceiver
from caredesk.connectors.batches import load_batch
from caredesk.connectors.costs.ledger import do_record_usage
from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.connectors.runtime import get_provider
from caredesk.ingest.pipeline import apply_changes, ingest_posts, triage_posts, unstored_edits
from caredesk.triage.types import TriageResult

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This process no longer holds the installation's stream: another one took it over."""


@dataclass(frozen=True, slots=True)
class BatchReport:
    received: int
    edited: int
    deleted: int


def apply_result(
    installation: ConnectorInstallation,
    platform: str,
    result: FetchResult,
    now: datetime,
    *,
    save_cursor: bool = True,
    polled: bool = False,
    triaged: Sequence[TriageResult] = (),
) -> BatchReport:
    """Store a batch: posts, then changes, then credentials and cursor (FetchResult's order). ``triaged``: the
    triage of the batch's posts, done before the transaction (``ingest.pipeline.triage_posts``).
    Precondition: inside a transaction holding the installation row lock."""
    # An edit of a post never stored brings the post in (then the edits apply in order, so a deletion wins).
    posts = [*result.posts, *unstored_edits(installation, result.posts, result.changes)]
    report = ingest_posts(installation, platform, posts, now, triaged)
    edited, deleted = apply_changes(installation, platform, result.changes, now) if result.changes else ([], [])
    if result.usage:
        do_record_usage(installation, result.usage, now)  # with the posts: a batch is billed once, or not at all
    do_record_batch(
        installation,
        cursor=result.cursor if save_cursor else None,
        received=report.received,
        changed=len(edited) + len(deleted),
        newest_post_at=max((p.created_at for p in posts), default=None),
        credentials=result.credentials,
        rate_limit_remaining=result.rate_limit_remaining,
        now=now,
        polled=polled,
    )
    if result.warnings:
        do_record_warning(installation, "; ".join(result.warnings))
    for rejected in result.rejected:
        log.warning("installation %s: record %s rejected: %s", installation.pk, rejected.position, rejected.reason)
    return BatchReport(report.received, len(edited), len(deleted))


_LEASE_HELD = (
    "SELECT 1 FROM connectors_connectorlease WHERE installation_id = %s AND holder = %s AND expires_at > now()"
)


def _holds_lease(installation_id: int, holder: str, *, lock: bool) -> bool:
    # FOR SHARE: a takeover's UPDATE of the lease waits for this transaction, so a holder that lost its lease
    # (paused, partitioned) can never commit a batch after another process took the stream over.
    with connection.cursor() as cursor:
        cursor.execute(_LEASE_HELD + (" FOR SHARE" if lock else ""), [installation_id, holder])
        return cursor.fetchone() is not None


def store_payload(
    installation_id: int, source: str, body: bytes, now: datetime, *, holder: str | None = None
) -> int:
    """Store a delivery raw, in one insert; returns its id. With ``holder`` (a stream) only while that process
    holds the installation's lease: else :class:`LeaseLost`, and the batch is dropped unsaved, its cursor too, so
    the new holder receives it again."""
    if holder is None:
        return int(RawPayload.objects.create(installation_id=installation_id, source=source, received_at=now,
                                             body=body).pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO connectors_rawpayload (installation_id, source, received_at, body, status, error, attempts)"
            " SELECT %s, %s, %s, %s, 'pending', '', 0 WHERE EXISTS (" + _LEASE_HELD + ") RETURNING id",
            [installation_id, source, now, body, installation_id, holder],
        )
        row = cursor.fetchone()
    if row is None:
        raise LeaseLost(f"installation {installation_id}: the stream lease is held by another process")
    return int(row[0])


def _result_of(payload: RawPayload, installation: ConnectorInstallation, now: datetime) -> tuple[str, FetchResult]:
    provider = get_provider(installation)
    if payload.source == RawPayload.Source.WEBHOOK:
        if not isinstance(provider, WebhookReceiver):
            raise ValueError(f"provider {installation.provider_key} cannot read webhook deliveries")
        return provider.platform, provider.parse(bytes(payload.body), now)
    return provider.platform, load_batch(bytes(payload.body))


def process_payload(payload_id: int, now: datetime, *, holder: str | None = None) -> str:
    """Process one stored payload: ``"processed"``, ``"failed"`` (kept with its error) or ``"already processed"``.

    A stream payload's cursor is saved unless a later stream payload of the installation was processed already
    (a retry of an old failure must not move the cursor back). With ``holder``, only while that process holds the
    lease (:class:`LeaseLost` otherwise; the payload stays pending for the new holder). Must not run inside a
    transaction: the outcome is committed here.
    """
    prepared = _prepare(payload_id, now)
    with transaction.atomic():
        payload = RawPayload.objects.select_for_update().get(pk=payload_id)
        if payload.status == RawPayload.Status.PROCESSED:
            return "already processed"
        if holder is not None and not _holds_lease(payload.installation_id, holder, lock=True):
            raise LeaseLost(f"installation {payload.installation_id}: the stream lease was taken over")
        installation = lock_installation(payload.installation_id)
        payload.attempts += 1
        try:
            with transaction.atomic():  # a savepoint: a fault undoes the batch, not the payload's record of it
                if prepared is not None and prepared[0] == payload.attempts - 1:
                    platform, result, triaged = prepared[1], prepared[2], prepared[3]
                else:  # could not be read before (it fails here again, recorded), or another attempt came between
                    platform, result = _result_of(payload, installation, now)
                    triaged = []
                later = RawPayload.objects.filter(
                    installation_id=payload.installation_id, source=payload.source, status=RawPayload.Status.PROCESSED,
                    pk__gt=payload.pk,
                ).exists()
                save_cursor = payload.source != RawPayload.Source.WEBHOOK and not later
                apply_result(installation, platform, result, now, save_cursor=save_cursor, triaged=triaged)
        except Exception as exc:
            payload.status = RawPayload.Status.FAILED
            payload.error = f"{type(exc).__name__}: {exc}"[:4000]
            payload.save(update_fields=["status", "error", "attempts"])
            log.warning("payload %s of installation %s failed: %s", payload.pk, payload.installation_id,
                        payload.error, exc_info=True)
            return "failed"
        payload.status = RawPayload.Status.PROCESSED
        payload.error = ""
        payload.processed_at = now
        payload.save(update_fields=["status", "error", "attempts", "processed_at"])
    return "processed"


def _prepare(payload_id: int, now: datetime) -> tuple[int, str, FetchResult, list[TriageResult]] | None:
    """The payload read and its posts triaged before the transaction, so that the installation lock is held for
    the writes alone: ``(attempts seen, platform, batch, triage of its posts)``, or None when it is processed
    already or cannot be read (the transaction then reads it again, and records the fault)."""
    payload = RawPayload.objects.filter(pk=payload_id).select_related("installation").first()
    if payload is None or payload.status == RawPayload.Status.PROCESSED:
        return None
    try:
        platform, result = _result_of(payload, payload.installation, now)
        return payload.attempts, platform, result, triage_posts(payload.installation, platform, result.posts, now)
    except Exception:  # noqa: BLE001 - recorded by the transaction, which meets the same fault
        return None


def pending_payload_ids(installation_id: int, source: str) -> list[int]:
    return list(
        RawPayload.objects.filter(installation_id=installation_id, source=source, status=RawPayload.Status.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _merged(results: Sequence[FetchResult]) -> FetchResult:
    """Consecutive batches without changes as one: their posts, rejections, usage and warnings together; the last
    cursor, rate limit and rotated credentials (each batch's replace the one's before)."""
    credentials = None
    for result in results:
        credentials = result.credentials if result.credentials is not None else credentials
    return FetchResult(
        posts=[p for r in results for p in r.posts],
        cursor=results[-1].cursor,
        rejected=[x for r in results for x in r.rejected],
        credentials=credentials,
        rate_limit_remaining=next(
            (r.rate_limit_remaining for r in reversed(results) if r.rate_limit_remaining is not None), None),
        usage=[u for r in results for u in r.usage],
        warnings=[w for r in results for w in r.warnings],
    )


def process_backlog(installation_id: int, payload_ids: Sequence[int], now: datetime, *, max_posts: int) -> int:
    """Process the first of ``payload_ids`` (pending payloads of one installation, in stored order) and as many of
    the next ones of the same source, without edits or deletions, as fit in ``max_posts`` posts, as one batch in
    one transaction: when a backlog builds up (a flood, a slow database) a worker takes it in larger sets, and
    each set costs one round of queries instead of one per payload. A fault in the merged batch undoes it and
    the payloads are processed one by one (each kept *failed* with its own error, the others stored). Returns
    how many of ``payload_ids`` were taken. Must not run inside a transaction."""
    rows = list(RawPayload.objects.filter(pk__in=payload_ids, installation_id=installation_id)
                .select_related("installation").order_by("pk"))
    group: list[RawPayload] = []
    results: list[FetchResult] = []
    platform = ""
    posts = 0
    for row in rows:
        if row.pk != payload_ids[len(group)] or row.status != RawPayload.Status.PENDING:
            break
        if group and row.source != group[0].source:
            break
        try:
            platform, result = _result_of(row, row.installation, now)
        except Exception:  # noqa: BLE001 - processed alone below, which records the fault
            break
        if result.changes or (group and posts + len(result.posts) > max_posts):
            break
        group.append(row)
        results.append(result)
        posts += len(result.posts)
    if len(group) < 2:
        process_payload(payload_ids[0], now)
        return 1
    merged = _merged(results)
    triaged = triage_posts(group[0].installation, platform, merged.posts, now)
    ids = [row.pk for row in group]
    seen = {row.pk: row.attempts for row in group}
    failed = False
    with transaction.atomic():
        locked = {p.pk: p for p in RawPayload.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        if any(p.status != RawPayload.Status.PENDING or p.attempts != seen[pk] for pk, p in locked.items()) or (
                len(locked) != len(ids)):
            failed = True  # processed or retried meanwhile: each one alone sees what to do
        else:
            installation = lock_installation(installation_id)
            try:
                with transaction.atomic():  # a savepoint: a fault undoes the batch, then each is tried alone
                    later = RawPayload.objects.filter(
                        installation_id=installation_id, source=group[0].source,
                        status=RawPayload.Status.PROCESSED, pk__gt=ids[-1],
                    ).exists()
                    save_cursor = group[0].source != RawPayload.Source.WEBHOOK and not later
                    apply_result(installation, platform, merged, now, save_cursor=save_cursor, triaged=triaged)
            except Exception:  # noqa: BLE001 - each payload alone records its own fault
                log.info("installation %s: payloads %s–%s failed together; processing them one by one",
                         installation_id, ids[0], ids[-1], exc_info=True)
                failed = True
            else:
                RawPayload.objects.filter(pk__in=ids).update(
                    status=RawPayload.Status.PROCESSED, error="", processed_at=now, attempts=F("attempts") + 1)
    if failed:
        for payload_id in ids:
            process_payload(payload_id, now)
    return len(ids)
