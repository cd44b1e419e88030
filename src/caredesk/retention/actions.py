"""A brand's retention policy, and its application in bounded, resumable batches.

**The policy.** ``Brand.retention_days`` (None: keep forever) and ``Brand.retention_action``:

- *redact*: posts keep their row (the thread still reads in order, counts and labels' history stay) but lose their
  text, raw record, triage reasons and matched keywords, as a post deleted on the platform does; the replies sent
  lose their text; the case's subject (taken from the first post) is replaced. Authors keep their handle: the
  handle is how an agent recognises a returning customer, and the platform shows it publicly anyway.
- *delete*: the case goes with its posts, replies, notes and activities (its timeline).

Raw payloads older than the cutoff are deleted under either action (they hold platform content and nothing else),
except *pending* ones, not processed yet: nothing accepted is dropped before it was processed.

**What it never touches.** Only *resolved* cases whose last change (``updated_at``) is older than the cutoff
are handled: an open (new, open, pending) case keeps everything, however old, until it is resolved and then left
alone for the retention period; a reply or a post reopens a case and so restarts its clock. Only the brand's own
rows: every query is filtered by the brand (cases, installations), never by time alone.

**Batches.** Each batch is one transaction over at most ``batch_size`` cases (or posts, or payloads); the run row
records the position after each, so an interrupted run resumes where it stopped (:func:`run_retention`). A case is
re-checked under its row lock before it is changed: one reopened since it was listed is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import Q, QuerySet

from caredesk.accounts.models import Brand
from caredesk.cases.models import Case, Post
from caredesk.connectors.base import ConnectorError
from caredesk.connectors.models import ConnectorInstallation
from caredesk.outbox.models import Reply
from caredesk.retention import partitions
from caredesk.retention.models import RetentionRun

log = logging.getLogger(__name__)

ACTIONS = ("redact", "delete")
# Shorter than a week would remove what agents still look at (a case resolved on Friday, reopened on Monday).
MIN_DAYS = 7
MAX_DAYS = 3650
BATCH_SIZE = 500
REDACTED_SUBJECT = "(removed by the retention policy)"


class RetentionError(Exception):
    """A policy that cannot be set; the message says why."""


def platform_limit(brand: Brand) -> tuple[int, str] | None:
    """The shortest retention that a provider of the brand's installations declares (days, provider), if any."""
    from caredesk.connectors.registry import get_provider_class

    limits = []
    for key in set(ConnectorInstallation.objects.filter(brand=brand).values_list("provider_key", flat=True)):
        try:
            days = get_provider_class(key).max_content_retention_days
        except ConnectorError:  # a provider no longer installed sets no limit
            days = None
        if days is not None:
            limits.append((days, key))
    return min(limits) if limits else None


def check_policy(brand: Brand, days: int | None, action: str) -> None:
    if action not in ACTIONS:
        raise RetentionError(f"the action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if days is not None and not MIN_DAYS <= days <= MAX_DAYS:
        raise RetentionError(f"the retention must be between {MIN_DAYS} and {MAX_DAYS} days, not {days}")
    limit = platform_limit(brand)
    if limit is not None and (days is None or days > limit[0]):
        kept = "forever" if days is None else f"{days} days"
        raise RetentionError(f"{limit[1]}'s terms allow keeping its content {limit[0]} days at most, not {kept}")


def do_set_retention(brand: Brand, days: int | None, action: str, now: datetime) -> Brand:
    """Set the brand's policy (``days`` None: keep forever). Raises :class:`RetentionError` for a bad one."""
    check_policy(brand, days, action)
    if (brand.retention_days, brand.retention_action) != (days, action):
        brand.retention_days, brand.retention_action, brand.retention_set_at = days, action, now
        brand.save(update_fields=["retention_days", "retention_action", "retention_set_at"])
        # A run of the old policy must not go on removing what the new one keeps.
        RetentionRun.objects.filter(brand=brand, status=RetentionRun.Status.RUNNING).update(
            status=RetentionRun.Status.FAILED, error="stopped: the policy changed", finished_at=now)
    return brand


# ---------------------------------------------------------------------------------------------------------------
# One batch of each phase. Each runs inside the caller's transaction and returns counts.


def _closed_cases(run: RetentionRun, limit: int) -> list[tuple[int, datetime]]:
    cases = Case.objects.filter(brand_id=run.brand_id, status=Case.Status.RESOLVED, updated_at__lt=run.cutoff)
    if run.since is not None:
        cases = cases.filter(updated_at__gte=run.since)
    if run.position_at is not None:
        cases = cases.filter(Q(updated_at__gt=run.position_at) | Q(updated_at=run.position_at,
                                                                    id__gt=run.position_id))
    return list(cases.order_by("updated_at", "id").values_list("id", "updated_at")[:limit])


def _lock_still_closed(run: RetentionRun, case_ids: list[int]) -> list[Case]:
    # In id order, as ingest locks the cases a batch of posts touches: two lockers in one order cannot deadlock.
    return list(Case.objects.select_for_update().filter(
        pk__in=case_ids, brand_id=run.brand_id, status=Case.Status.RESOLVED, updated_at__lt=run.cutoff,
    ).order_by("pk"))


def _redact_posts(posts: QuerySet[Post]) -> int:
    return int(posts.exclude(text="", raw={}, triage={}).update(text="", raw={}, triage={}, matched_keywords=[]))


def do_retain_cases(run: RetentionRun, case_ids: list[int]) -> dict[str, int]:
    """Redact or delete these closed cases of the run's brand (those still closed and old under their lock)."""
    cases = _lock_still_closed(run, case_ids)
    ids = [c.pk for c in cases]
    counts = {"cases_skipped": len(case_ids) - len(ids)}
    if not ids:
        return counts
    posts = Post.objects.filter(case_id__in=ids)
    if run.action == "redact":
        counts["posts_redacted"] = _redact_posts(posts)
        counts["replies_redacted"] = Reply.objects.filter(case_id__in=ids).exclude(text="").update(text="")
        # The case keeps its updated_at: a redaction is not a change an agent made, and must not restart its clock.
        counts["cases_redacted"] = Case.objects.filter(pk__in=ids).exclude(subject=REDACTED_SUBJECT).update(
            subject=REDACTED_SUBJECT)
    else:
        # Replies hold their post (PROTECT) and belong to the case: they go first, then the posts, then the case
        # with what cascades from it (activities, notes, presence).
        counts["replies_deleted"] = Reply.objects.filter(case_id__in=ids).delete()[0]
        counts["posts_deleted"] = posts.delete()[1].get("cases.Post", 0)
        deleted = Case.objects.filter(pk__in=ids).delete()[1]
        counts["cases_deleted"] = deleted.get("cases.Case", 0)
        counts["activities_deleted"] = deleted.get("cases.Activity", 0)
        counts["notes_deleted"] = deleted.get("cases.Note", 0)
    return counts


def do_retain_loose_posts(run: RetentionRun, limit: int) -> tuple[dict[str, int], bool]:
    """Posts of the brand in no case (the brand's own, ignored ones) older than the cutoff. (counts, more left)."""
    loose = Post.objects.filter(case__isnull=True, installation__brand_id=run.brand_id, created_at__lt=run.cutoff)
    if run.action == "redact":
        ids = list(loose.exclude(text="", raw={}, triage={}).order_by("id").values_list("id", flat=True)[:limit])
        return {"posts_redacted": _redact_posts(Post.objects.filter(pk__in=ids))}, len(ids) == limit
    ids = list(loose.filter(replies__isnull=True).order_by("id").values_list("id", flat=True)[:limit])
    deleted = Post.objects.filter(pk__in=ids).delete()[1].get("cases.Post", 0)
    return {"posts_deleted": deleted}, len(ids) == limit


def do_delete_old_payloads(run: RetentionRun, limit: int) -> tuple[dict[str, int], bool]:
    """Raw payloads of the brand received before the cutoff, but pending ones. (counts, more left)."""
    with connection.cursor() as cursor:
        # received_at bounds the partitions read (pruning): only months older than the cutoff are scanned.
        cursor.execute(
            "DELETE FROM connectors_rawpayload WHERE (id, received_at) IN ("
            " SELECT p.id, p.received_at FROM connectors_rawpayload p"
            " JOIN connectors_connectorinstallation i ON i.id = p.installation_id"
            " WHERE i.brand_id = %s AND p.received_at < %s AND p.status <> 'pending' LIMIT %s)"
            " AND received_at < %s",
            [run.brand_id, run.cutoff, limit, run.cutoff],
        )
        deleted = cursor.rowcount
    return {"payloads_deleted": deleted}, deleted == limit


# ---------------------------------------------------------------------------------------------------------------
# A run.


@dataclass(frozen=True, slots=True)
class Outcome:
    run: RetentionRun
    finished: bool


def _add(counts: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + int(value)


def start_or_resume(brand: Brand, now: datetime) -> RetentionRun | None:
    """The brand's run in progress, or a new one; None when the brand keeps everything."""
    running = RetentionRun.objects.filter(brand=brand, status=RetentionRun.Status.RUNNING).first()
    if running is not None:
        return running
    if brand.retention_days is None:
        return None
    # Cases changed before the last finished run's cutoff (of the policy in force) were handled by it.
    previous = RetentionRun.objects.filter(brand=brand, status=RetentionRun.Status.DONE,
                                           action=brand.retention_action)
    if brand.retention_set_at is not None:
        previous = previous.filter(started_at__gte=brand.retention_set_at)
    last = previous.order_by("-started_at").first()
    return RetentionRun.objects.create(
        brand=brand, action=brand.retention_action, days=brand.retention_days,
        cutoff=now - timedelta(days=brand.retention_days), since=last.cutoff if last else None, started_at=now,
    )


def run_retention(brand: Brand, now: datetime, batch_size: int = BATCH_SIZE,
                  max_batches: int | None = None) -> Outcome | None:
    """Apply the brand's policy, batch by batch, each batch its own transaction (call it outside any). Stops after
    ``max_batches`` (None: when done); a later call resumes. None when the brand keeps everything."""
    with transaction.atomic():
        run = start_or_resume(brand, now)
    if run is None:
        return None
    batches = 0
    while run.phase != RetentionRun.Phase.FINISHED:
        if max_batches is not None and batches >= max_batches:
            return Outcome(run, finished=False)
        with transaction.atomic():
            run = RetentionRun.objects.select_for_update().get(pk=run.pk)
            if run.phase == RetentionRun.Phase.CASES:
                listed = _closed_cases(run, batch_size)
                if listed:
                    _add(run.counts, do_retain_cases(run, [case_id for case_id, _ in listed]))
                    run.position_id, run.position_at = listed[-1]
                if len(listed) < batch_size:
                    run.phase = RetentionRun.Phase.POSTS
            elif run.phase == RetentionRun.Phase.POSTS:
                counts, more = do_retain_loose_posts(run, batch_size)
                _add(run.counts, counts)
                if not more:
                    run.phase = RetentionRun.Phase.PAYLOADS
            else:
                counts, more = do_delete_old_payloads(run, batch_size * 10)
                _add(run.counts, counts)
                if not more:
                    run.phase = RetentionRun.Phase.FINISHED
                    run.status = RetentionRun.Status.DONE
                    run.finished_at = datetime.now(now.tzinfo)
            run.batches += 1
            run.save(update_fields=["counts", "position_at", "position_id", "phase", "status", "finished_at",
                                    "batches"])
        batches += 1
    log.info("retention of brand %s: %s", brand.slug, run.summary())
    return Outcome(run, finished=True)


def run_all(now: datetime, batch_size: int = BATCH_SIZE) -> list[RetentionRun]:
    """Raw-payload partitions older than every policy dropped, every brand's policy applied, emptied months
    dropped."""
    # First the raw-payload months past every policy, whole: their rows need not be deleted one by one below.
    dropped = _dropping(lambda cursor: drop_expired_payload_partitions(cursor, now))
    runs = []
    for brand in Brand.objects.filter(retention_days__isnull=False).order_by("pk"):
        try:
            outcome = run_retention(brand, now, batch_size)
        except Exception as exc:
            log.exception("retention of brand %s failed", brand.slug)
            RetentionRun.objects.filter(brand=brand, status=RetentionRun.Status.RUNNING).update(error=str(exc)[:2000])
            continue
        if outcome is not None:
            runs.append(outcome.run)
    def emptied(cursor: Any) -> list[str]:
        return [name for table in partitions.PARTITIONED if partitions.is_partitioned(cursor, table)
                for name in partitions.drop_empty_partitions(cursor, table, now)]

    dropped += _dropping(emptied)
    if dropped:
        log.info("retention dropped partitions %s", ", ".join(dropped))
    return runs


def _dropping(drop: Callable[[Any], list[str]]) -> list[str]:
    """Run ``drop`` in its own transaction; a partition whose lock is not had in time waits for the next day."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            return drop(cursor)
    except OperationalError as exc:  # lock_timeout behind a long query: nothing dropped, nothing lost
        log.warning("retention could not drop partitions now: %s", exc)
        return []


def drop_expired_payload_partitions(cursor: Any, now: datetime) -> list[str]:
    """Raw-payload months older than every brand's retention, holding nothing pending, dropped whole: cheaper than
    deleting their rows one by one. Only when every brand with an installation has a policy."""
    brands = Brand.objects.filter(installations__isnull=False).distinct()
    days = list(brands.values_list("retention_days", flat=True))
    if not days or any(d is None for d in days):
        return []
    oldest_cutoff = now - timedelta(days=max(d for d in days if d is not None))
    dropped = []
    for part in partitions.list_partitions(cursor, "connectors_rawpayload"):
        if part.end > oldest_cutoff:
            break
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {part.name} WHERE status = 'pending')")  # noqa: S608
        if cursor.fetchone()[0]:
            partitions.drop_partition(cursor, part)
            dropped.append(part.name)
    return dropped
