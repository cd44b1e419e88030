"""Normalized posts → triaged, deduplicated, stored posts threaded into cases.

This is the one path every connector's posts take, whether polled by the worker, imported from a file or
replayed in the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connection

from caredesk.cases.actions import ReceiveReport, do_delete_posts, do_edit_posts, do_receive_posts
from caredesk.cases.models import Author, Post
from caredesk.connectors.base import NormalizedPost, PostChange, PostDeleted, PostEdited
from caredesk.connectors.models import ConnectorInstallation
from caredesk.triage import classify
from caredesk.triage.brand_models import active_bundle
from caredesk.triage.types import PostSignals, TriageResult

# Earlier posts by the same author within this window count as repeated contact, which raises urgency.
REPEAT_CONTACT_WINDOW = timedelta(days=3)


def _prior_contacts(brand_id: int, platform: str, posts: Sequence[NormalizedPost], now: datetime) -> dict[str, int]:
    """Recent posts per author to this brand only: a customer of two brands is two customers."""
    # Raw SQL with one array parameter: the queryset's IN list of a batch's authors cost more to build and quote
    # than the query took to run.
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT a.external_id, count(*) FROM "{Post._meta.db_table}" p'  # noqa: S608
            f' JOIN "{Author._meta.db_table}" a ON a.id = p.author_id'
            " WHERE a.brand_id = %s AND a.platform = %s AND a.external_id = ANY(%s::text[])"
            " AND p.direction = %s AND p.created_at >= %s GROUP BY a.external_id",
            [brand_id, platform, list({p.author.external_id for p in posts}), str(Post.Direction.INBOUND),
             now - REPEAT_CONTACT_WINDOW],
        )
        return {external_id: count for external_id, count in cursor.fetchall()}


def ingest_posts(
    installation: ConnectorInstallation,
    platform: str,
    posts: Sequence[NormalizedPost],
    now: datetime,
    triaged: Sequence[TriageResult] = (),
) -> ReceiveReport:
    """Triage and store ``posts``; ``triaged``: the results of its first posts, triaged earlier (by
    :func:`triage_posts`, before the transaction). Precondition: inside a transaction holding the installation
    row lock."""
    if not posts:
        return ReceiveReport()
    results = list(triaged[: len(posts)])
    if len(results) < len(posts):
        results += _triage(installation, platform, posts[len(results) :], now)
    return do_receive_posts(installation, platform, list(zip(posts, results, strict=True)), now)


def triage_posts(
    installation: ConnectorInstallation, platform: str, posts: Sequence[NormalizedPost], now: datetime
) -> list[TriageResult]:
    """Triage a batch before its transaction, so the installation lock is held for storing only. Reads without
    locking: a post of the same author committed meanwhile may be missing from the repeat-contact count."""
    return _triage(installation, platform, posts, now) if posts else []


def unstored_edits(
    installation: ConnectorInstallation, posts: Sequence[NormalizedPost], changes: Sequence[PostChange]
) -> list[NormalizedPost]:
    """The edited versions of posts never stored (nor in ``posts``), the first edit of each: an edit is then how
    the platform first showed the post (its original came before listening began, or was lost), so it is
    stored as a new post rather than dropped. The edits still apply after it, in order, so a deletion later in
    the batch removes it and the last edit's text wins."""
    edits = [c.post for c in changes if isinstance(c, PostEdited)]
    wanted = {p.external_id for p in edits} - {p.external_id for p in posts}
    if not wanted:
        return []
    # A deleted post is stored too (its row keeps the thread): it must not come back through an edit.
    wanted -= set(
        Post.objects.filter(installation=installation, external_id__in=wanted).values_list("external_id", flat=True)
    )
    first: dict[str, NormalizedPost] = {}
    for post in edits:
        if post.external_id in wanted:
            first.setdefault(post.external_id, post)
    return list(first.values())


def apply_changes(
    installation: ConnectorInstallation, platform: str, changes: Sequence[PostChange], now: datetime
) -> tuple[list[int], list[int]]:
    """Apply edits (triaged again) and deletions of stored posts, in order: a post edited then deleted in one
    batch ends deleted, one deleted then "edited" stays deleted. Returns the ids of the posts edited and deleted.
    Precondition: inside a transaction holding the installation row lock."""
    edited: list[int] = []
    deleted: list[int] = []
    # Runs of consecutive edits are triaged together; a deletion ends a run.
    run: list[NormalizedPost] = []

    def flush() -> None:
        if run:
            results = _triage(installation, platform, run, now)
            edited.extend(do_edit_posts(installation, list(zip(run, results, strict=True)), now))
            run.clear()

    for change in changes:
        if isinstance(change, PostEdited):
            run.append(change.post)
        elif isinstance(change, PostDeleted):
            flush()
            deleted.extend(do_delete_posts(installation, [change.external_id], now))
    flush()
    return edited, deleted


def _triage(
    installation: ConnectorInstallation, platform: str, posts: Sequence[NormalizedPost], now: datetime
) -> list[TriageResult]:
    prior = _prior_contacts(installation.brand_id, platform, posts, now)
    handles = tuple(installation.own_handles or ())
    signals = [
        PostSignals(
            text=p.text,
            author_followers=p.author.followers,
            author_verified=p.author.verified,
            is_direct=p.is_direct,
            is_reply=bool(p.in_reply_to_external_id),
            prior_contacts=prior.get(p.author.external_id, 0),
            brand_handles=handles,
            author_handle=p.author.handle,
        )
        for p in posts
    ]
    # The brand's own model when one was trained from its agents' corrections (one cheap query per batch).
    bundle = active_bundle(installation.brand_id)
    return list(classify(signals, model=bundle))
