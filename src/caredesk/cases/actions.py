"""Every write to cases, posts, authors, customers, notes and activities goes through here.

Actions never open or commit transactions: the request or job that calls them owns the transaction, so two
actions compose into one. Each records Activity rows and publishes them with
:func:`caredesk.cases.events.publish_activities`, which only fires after commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils import timezone

from caredesk.cases.bulk import allocate_id_blocks, copy_rows, update_records, update_rows
from caredesk.cases.events import publish_activities
from caredesk.cases.lifecycle import Reason, TransitionError, transition
from caredesk.cases.models import Activity, Author, Case, Customer, Note, Post
from caredesk.connectors.base import NormalizedPost
from caredesk.triage import mask_pii
from caredesk.triage.types import TriageResult
from caredesk.triage.vocabulary import SENTIMENTS

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from caredesk.connectors.models import ConnectorInstallation

# A customer who answers in the thread of a case resolved this recently is still talking about the same thing.
REOPEN_WINDOW = timedelta(days=7)
SUBJECT_LENGTH = 140


class CaseActionError(Exception):
    """A requested change is not allowed; the message is shown to the agent as is."""


class CaseConflictError(CaseActionError):
    """The request is well formed but the current state refuses it (reopening an open case); the API says 409."""


@dataclass
class ReceiveReport:
    received: int = 0
    duplicates: int = 0
    own_posts: int = 0
    spam: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    post_ids: list[int] = field(default_factory=list)


def _subject(text: str, triage: TriageResult) -> str:
    # The subject is shown in lists and exports; personal data from a public post never goes into it.
    flat = " ".join(mask_pii(text, triage.pii).split())
    return flat if len(flat) <= SUBJECT_LENGTH else flat[: SUBJECT_LENGTH - 1] + "…"


@dataclass(slots=True)
class _AuthorRow:
    """The author columns ingest reads and writes: a plain row, not a model instance (building one Author per
    post was a fifth of ``do_receive_posts``)."""

    pk: int
    external_id: str
    handle: str
    name: str
    followers: int
    verified: bool
    customer_id: int | None


def _upsert_authors(platform: str, posts: Sequence[NormalizedPost], brand_id: int) -> dict[str, _AuthorRow]:
    wanted = {p.author.external_id: p.author for p in posts}
    author_table = Author._meta.db_table
    with connection.cursor() as cursor:
        # One array parameter: psycopg adapts the list as one literal, not one quoted value per id.
        cursor.execute(
            f'SELECT id, external_id, handle, name, followers, verified, customer_id FROM "{author_table}"'  # noqa: S608
            " WHERE brand_id = %s AND platform = %s AND external_id = ANY(%s::text[])",
            [brand_id, platform, list(wanted)],
        )
        existing = {row[1]: _AuthorRow(*row) for row in cursor.fetchall()}
    changed: list[dict[str, Any]] = []
    for ext_id, incoming in wanted.items():
        author = existing.get(ext_id)
        if author is None:
            continue
        fresh = (incoming.handle, incoming.name, incoming.followers, incoming.verified)
        if (author.handle, author.name, author.followers, author.verified) != fresh:
            author.handle, author.name, author.followers, author.verified = fresh
            changed.append({"id": author.pk, "handle": author.handle, "name": author.name,
                            "followers": author.followers, "verified": author.verified})
    if changed:
        update_records(author_table, "id bigint, handle text, name text, followers integer, verified boolean",
                       ("handle", "name", "followers", "verified"), changed)
    missing = [wanted[ext_id] for ext_id in wanted if ext_id not in existing]
    if missing:
        stamp = timezone.now()
        customer_ids, author_ids = allocate_id_blocks(
            [(Customer._meta.db_table, len(missing)), (author_table, len(missing))]
        )
        copy_rows(
            Customer._meta.db_table,
            ("id", "brand_id", "display_name", "external_account_id", "created_at"),
            ((cid, brand_id, a.name or a.handle, "", stamp) for cid, a in zip(customer_ids, missing, strict=True)),
        )
        created = [
            _AuthorRow(author_id, a.external_id, a.handle, a.name, a.followers, a.verified, customer_id)
            for author_id, a, customer_id in zip(author_ids, missing, customer_ids, strict=True)
        ]
        copy_rows(
            author_table,
            ("id", "brand_id", "platform", "external_id", "handle", "name", "followers", "verified", "customer_id",
             "updated_at"),
            ((a.pk, brand_id, platform, a.external_id, a.handle, a.name, a.followers, a.verified, a.customer_id,
              stamp) for a in created),
        )
        existing.update({a.external_id: a for a in created})
    return existing


def _merge_labels(case: Case, triage: TriageResult) -> None:
    topic = str(triage.topic.value)
    if topic and (topic != "other" or not case.topic):
        case.topic = topic
    case.sentiment = str(triage.sentiment.value)
    case.urgency = max(case.urgency, float(triage.urgency.value))
    case.priority = max(case.priority, triage.priority)
    case.needs_reply = case.needs_reply or bool(triage.needs_reply.value)


def _transition(case: Case, status: str, now: datetime, reason: Reason, actor: User | None = None) -> Activity:
    """A status change that ingest or the outbox makes on its own; always a real change, so always an activity."""
    activity = transition(case, status, now, reason, actor)
    assert activity is not None, "callers only ask for a change"
    return activity


def _case_labels(case: Case | None) -> dict[str, Any]:
    """What a post changed on its case, carried in the event so a live client can update its copy."""
    if case is None:
        return {}
    return {"status": case.status, "topic": case.topic, "sentiment": case.sentiment, "priority": case.priority}


def do_receive_posts(
    installation: ConnectorInstallation,
    platform: str,
    items: Sequence[tuple[NormalizedPost, TriageResult]],
    now: datetime,
) -> ReceiveReport:
    """Store a batch of normalized, triaged posts and thread them into cases.

    Idempotent: a post already stored for this installation is counted as a duplicate and left alone. Posts by
    the brand's own accounts (or matching a reply the desk sent) are stored as outbound and never open work.
    Precondition: call inside a transaction while holding the installation row lock (``select_for_update``), so
    two ingesters of one installation cannot race on the same external ids.
    """
    report = ReceiveReport()
    if not items:
        return report
    brand_id = installation.brand_id
    by_id: dict[str, tuple[NormalizedPost, TriageResult]] = {}
    for post, triage in items:
        if post.external_id in by_id:
            report.duplicates += 1
        else:
            by_id[post.external_id] = (post, triage)

    from caredesk.outbox.models import Reply  # outbox depends on cases, not the other way round at import time

    # One round trip for what is already stored (these posts, the posts they answer) and for the desk's own sent
    # replies among them; ids go as one array parameter each.
    parents = {p.in_reply_to_external_id for p, _ in by_id.values() if p.in_reply_to_external_id}
    parents |= {p.conversation_external_id for p, _ in by_id.values() if p.conversation_external_id}
    stored: dict[str, int | None] = {}
    sent_reply_ids: set[str] = set()
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT true, external_id, case_id FROM "{Post._meta.db_table}"'  # noqa: S608
            " WHERE installation_id = %s AND external_id = ANY(%s::text[])"
            f' UNION ALL SELECT false, external_id, NULL FROM "{Reply._meta.db_table}"'
            " WHERE installation_id = %s AND external_id = ANY(%s::text[])",
            [installation.pk, list(by_id.keys() | parents), installation.pk, list(by_id)],
        )
        for is_post, ext_id, case_id in cursor.fetchall():
            if is_post:
                stored[ext_id] = case_id
            else:
                sent_reply_ids.add(ext_id)
    known = by_id.keys() & stored.keys()
    report.duplicates += len(known)
    fresh = sorted(
        (pair for ext_id, pair in by_id.items() if ext_id not in known), key=lambda pair: pair[0].created_at
    )
    if not fresh:
        return report

    own_accounts = set(installation.own_account_ids or ())
    sent_reply_ids &= {p.external_id for p, _ in fresh}
    authors = _upsert_authors(platform, [p for p, _ in fresh], brand_id)

    # Cases of the posts these ones answer, from the database and from earlier posts of this batch.
    parent_ids = {p.in_reply_to_external_id for p, _ in fresh if p.in_reply_to_external_id}
    parent_ids |= {p.conversation_external_id for p, _ in fresh if p.conversation_external_id}
    parent_case_ids = {ext_id: stored[ext_id] for ext_id in parent_ids if ext_id in stored}
    customer_ids = {a.customer_id for a in authors.values() if a.customer_id}
    touched_case_ids = {cid for cid in parent_case_ids.values() if cid}
    cases: dict[int, Case] = {
        c.pk: c
        for c in Case.objects.raw(
            f'SELECT * FROM "{Case._meta.db_table}" WHERE brand_id = %s'  # noqa: S608
            " AND (id = ANY(%s::bigint[]) OR (customer_id = ANY(%s::bigint[]) AND status = ANY(%s::text[])))"
            " ORDER BY id FOR UPDATE",
            [brand_id, list(touched_case_ids), list(customer_ids), [str(s) for s in Case.OPEN_STATUSES]],
        )
    }
    case_of_post: dict[str, Case | None] = {
        ext_id: cases.get(cid) if cid else None for ext_id, cid in parent_case_ids.items()
    }
    open_case_of_customer: dict[int, Case] = {}
    for existing_case in sorted(cases.values(), key=lambda c: c.last_inbound_at):
        if existing_case.is_open:
            open_case_of_customer[existing_case.customer_id] = existing_case

    new_posts: list[tuple[NormalizedPost, TriageResult, _AuthorRow, bool, str]] = []
    post_case: list[Case | None] = []
    new_cases: list[Case] = []
    updated: dict[int, Case] = {}
    status_changes: list[Activity] = []
    for normalized, triage in fresh:
        author = authors[normalized.author.external_id]
        own = author.external_id in own_accounts or normalized.external_id in sent_reply_ids
        parent_key = normalized.in_reply_to_external_id or normalized.conversation_external_id
        case: Case | None = case_of_post.get(normalized.in_reply_to_external_id) or case_of_post.get(
            normalized.conversation_external_id
        )
        if own:
            report.own_posts += 1
        elif bool(triage.spam.value):
            report.spam += 1
            case = None
        else:
            if case is not None and not case.is_open:
                if case.resolved_at is not None and now - case.resolved_at > REOPEN_WINDOW:
                    case = None
                else:
                    status_changes.append(_transition(case, Case.Status.OPEN, now, Reason.CUSTOMER_WROTE_AGAIN))
            if case is None and author.customer_id:
                case = open_case_of_customer.get(author.customer_id)
            if case is None:
                customer_id = author.customer_id
                if customer_id is None:
                    customer = Customer.objects.create(brand_id=brand_id, display_name=author.name or author.handle)
                    Author.objects.filter(pk=author.pk).update(customer_id=customer.pk)
                    author.customer_id = customer_id = customer.pk
                case = Case(
                    brand_id=brand_id,
                    customer_id=customer_id,
                    subject=_subject(normalized.text, triage),
                    status=Case.Status.NEW,
                    priority=triage.priority,
                    topic=str(triage.topic.value),
                    sentiment=str(triage.sentiment.value),
                    urgency=float(triage.urgency.value),
                    needs_reply=bool(triage.needs_reply.value),
                    created_at=now,
                    updated_at=now,
                    last_inbound_at=normalized.created_at,
                )
                new_cases.append(case)
                open_case_of_customer[customer_id] = case
            else:
                _merge_labels(case, triage)
                if case.status == Case.Status.PENDING:
                    # The customer answered: the ball is back with us.
                    status_changes.append(_transition(case, Case.Status.OPEN, now, Reason.CUSTOMER_ANSWERED))
                case.last_inbound_at = max(case.last_inbound_at, normalized.created_at)
                case.updated_at = now
                if case.pk:
                    updated[case.pk] = case
        new_posts.append((normalized, triage, author, own, normalized.conversation_external_id or parent_key))
        post_case.append(case)
        case_of_post[normalized.external_id] = case  # later posts of this batch may answer this one

    # Every id this batch writes, for all three tables, in one round trip: the activity count is known here (one
    # per new case, per status change, per post).
    case_ids, post_ids, activity_ids = allocate_id_blocks([
        (Case._meta.db_table, len(new_cases)),
        (Post._meta.db_table, len(new_posts)),
        (Activity._meta.db_table, len(new_cases) + len(status_changes) + len(new_posts)),
    ])
    for new_case, case_id in zip(new_cases, case_ids, strict=True):
        new_case.pk = case_id
    copy_rows(Case._meta.db_table, _CASE_COLUMNS, (_case_row(c) for c in new_cases))
    copy_rows(
        Post._meta.db_table,
        _POST_COLUMNS,
        (
            _post_row(post_id, installation.pk, normalized, triage, author, own, conversation, owner, now)
            for post_id, (normalized, triage, author, own, conversation), owner in zip(
                post_ids, new_posts, post_case, strict=True
            )
        ),
    )
    if updated:
        update_rows(
            list(updated.values()),
            ["status", "resolved_at", "topic", "sentiment", "urgency", "priority", "needs_reply",
             "last_inbound_at", "updated_at"],
        )
    activities: list[tuple[str, int | None, int | None, dict[str, Any]]] = [
        (Activity.Kind.CASE_CREATED, c.pk, None, {"status": c.status, "priority": c.priority, "topic": c.topic})
        for c in new_cases
    ]
    activities += [(a.kind, a.case_id, a.actor_id, a.data) for a in status_changes]
    activities += [
        (Activity.Kind.POST_RECEIVED, owner.pk if owner else None, None,
         {"post_id": post_id, "direction": Post.Direction.OUTBOUND if spec[3] else Post.Direction.INBOUND,
          **_case_labels(owner)})
        for post_id, spec, owner in zip(post_ids, new_posts, post_case, strict=True)
    ]
    copy_rows(
        Activity._meta.db_table,
        ("id", "kind", "brand_id", "case_id", "actor_id", "data", "created_at"),
        ((activity_id, str(kind), brand_id, case_id, actor_id, json.dumps(data), now)
         for activity_id, (kind, case_id, actor_id, data) in zip(activity_ids, activities, strict=True)),
    )
    publish_activities(activity_ids)

    report.received = len(new_posts)
    report.cases_created = len(new_cases)
    report.cases_updated = len(updated)
    report.post_ids = post_ids
    return report


_CASE_COLUMNS = (
    "id", "brand_id", "customer_id", "subject", "status", "priority", "topic", "sentiment", "urgency",
    "needs_reply", "created_at", "updated_at", "last_inbound_at",
)


def _case_row(case: Case) -> tuple[Any, ...]:
    return (
        case.pk, case.brand_id, case.customer_id, case.subject, case.status, case.priority, case.topic,
        case.sentiment, case.urgency, case.needs_reply, case.created_at, case.updated_at, case.last_inbound_at,
    )


_EMPTY_LIST = json.dumps([])  # most posts match no keyword: no json.dumps call for them

_POST_COLUMNS = (
    "id", "installation_id", "external_id", "author_id", "case_id", "direction", "is_direct", "summoned",
    "matched_keywords", "text", "language", "url", "in_reply_to_external_id", "conversation_external_id",
    "created_at", "received_at", "raw", "triage",
)


def _post_row(
    post_id: int,
    installation_id: int,
    normalized: NormalizedPost,
    triage: TriageResult,
    author: _AuthorRow,
    own: bool,
    conversation: str,
    case: Case | None,
    now: datetime,
) -> tuple[Any, ...]:
    keywords = json.dumps(list(normalized.matched_keywords)) if normalized.matched_keywords else _EMPTY_LIST
    return (
        post_id, installation_id, normalized.external_id, author.pk, case.pk if case else None,
        Post.Direction.OUTBOUND if own else Post.Direction.INBOUND, normalized.is_direct,
        normalized.summoned or normalized.is_direct, keywords,
        normalized.text, normalized.language or triage.language, normalized.url,
        normalized.in_reply_to_external_id, conversation, normalized.created_at, now,
        json.dumps(dict(normalized.raw)), json.dumps(triage.as_dict()),
    )


DELETED_SUBJECT = "(post deleted on the platform)"


def _first_post_ids(case_ids: set[int]) -> set[int]:
    """The first post of each case: the one its subject was made from."""
    first: dict[int, int] = {}
    for post_id, case_id in (
        Post.objects.filter(case_id__in=case_ids).order_by("case_id", "created_at", "pk").values_list("pk", "case_id")
    ):
        first.setdefault(case_id, post_id)
    return set(first.values())


def _changed_posts(installation: ConnectorInstallation, external_ids: Sequence[str]) -> dict[str, Post]:
    """The stored, not deleted posts among ``external_ids``, their cases locked (ingest's order: installation,
    then cases by id)."""
    posts = {
        p.external_id: p
        for p in Post.objects.filter(installation=installation, external_id__in=external_ids, deleted_at=None)
    }
    case_ids = sorted({p.case_id for p in posts.values() if p.case_id})
    if case_ids:
        list(Case.objects.select_for_update().filter(pk__in=case_ids).order_by("pk").values_list("pk"))
    return posts


def do_edit_posts(
    installation: ConnectorInstallation, items: Sequence[tuple[NormalizedPost, TriageResult]], now: datetime
) -> list[int]:
    """Replace stored posts' text with the platform's edited version (the old text is not kept anywhere: not in
    the activity, not in ``raw``), with the new triage labels; a case whose subject came from the post gets the
    new subject. The case's own labels are left as they are (an agent may have set them). Posts never stored,
    or deleted, are ignored here (connector processing stores an edit of a post never received as a new post
    first: ``ingest.pipeline.unstored_edits``). Returns the ids of the posts changed.
    Precondition: inside a transaction holding the installation row lock."""
    if not items:
        return []
    posts = _changed_posts(installation, [p.external_id for p, _ in items])
    first = _first_post_ids({p.case_id for p in posts.values() if p.case_id})
    activities: list[Activity] = []
    changed: list[Post] = []
    for normalized, triage in items:
        post = posts.get(normalized.external_id)
        if post is None:
            continue
        post.text = normalized.text
        post.raw = dict(normalized.raw)
        post.triage = triage.as_dict()
        post.language = normalized.language or triage.language
        post.summoned = normalized.summoned or normalized.is_direct
        post.matched_keywords = list(normalized.matched_keywords)
        post.edited_at = now
        changed.append(post)
        if post.case_id and post.pk in first:
            Case.objects.filter(pk=post.case_id).update(subject=_subject(normalized.text, triage), updated_at=now)
        activities.append(Activity(kind=Activity.Kind.POST_EDITED, brand_id=installation.brand_id,
                                   case_id=post.case_id, created_at=now, data={"post_id": post.pk}))
    update_rows(changed, ["text", "raw", "triage", "language", "summoned", "matched_keywords", "edited_at"])
    Activity.objects.bulk_create(activities)
    publish_activities(a.pk for a in activities)
    return [p.pk for p in changed]


def do_delete_posts(installation: ConnectorInstallation, external_ids: Sequence[str], now: datetime) -> list[int]:
    """Remove the text of posts deleted on the platform: the row stays so the thread still reads in order, with
    its text, raw record and labels emptied and ``deleted_at`` set; a case whose subject came from it loses that
    subject. Unknown or already deleted posts are ignored. Returns the ids of the posts changed.
    Precondition: inside a transaction holding the installation row lock."""
    posts = _changed_posts(installation, list(dict.fromkeys(external_ids)))
    if not posts:
        return []
    first = _first_post_ids({p.case_id for p in posts.values() if p.case_id})
    activities: list[Activity] = []
    for post in posts.values():
        post.text, post.raw, post.triage, post.matched_keywords, post.deleted_at = "", {}, {}, [], now
        if post.case_id and post.pk in first:
            Case.objects.filter(pk=post.case_id).update(subject=DELETED_SUBJECT, updated_at=now)
        activities.append(Activity(kind=Activity.Kind.POST_DELETED, brand_id=installation.brand_id,
                                   case_id=post.case_id, created_at=now, data={"post_id": post.pk}))
    update_rows(list(posts.values()), ["text", "raw", "triage", "matched_keywords", "deleted_at"])
    Activity.objects.bulk_create(activities)
    publish_activities(a.pk for a in activities)
    return [p.pk for p in posts.values()]


def _record(case: Case, kind: str, actor: User | None, now: datetime, **data: Any) -> Activity:
    activity = Activity.objects.create(
        kind=kind, brand_id=case.brand_id, case=case, actor=actor, created_at=now, data=data
    )
    publish_activities([activity.pk])
    return activity


def lock_case(case_id: int) -> Case:
    """Fetch a case with its row locked for the rest of the caller's transaction."""
    try:
        return Case.objects.select_for_update().get(pk=case_id)
    except Case.DoesNotExist:
        raise CaseActionError(f"case {case_id} does not exist") from None


def _save_transition(activity: Activity | None) -> None:
    if activity is not None:
        activity.save()
        publish_activities([activity.pk])


def do_assign_case(case: Case, assignee: User | None, actor: User | None, now: datetime) -> Case:
    """Precondition: the case row is locked and the assignment was checked (``access.check_assignment``)."""
    if case.assignee_id == (assignee.pk if assignee else None):
        return case
    case.assignee = assignee
    opened = None
    if case.status == Case.Status.NEW and assignee is not None:
        opened = transition(case, Case.Status.OPEN, now, Reason.ASSIGNED, actor)
    case.updated_at = now
    case.save(update_fields=["assignee", "status", "resolved_at", "updated_at"])
    _record(case, Activity.Kind.CASE_ASSIGNED, actor, now,
            assignee_id=assignee.pk if assignee else None,
            assignee=assignee.get_username() if assignee else None, status=case.status)
    _save_transition(opened)
    return case


def do_change_status(
    case: Case, status: str, actor: User | None, now: datetime, reason: Reason = Reason.AGENT
) -> Case:
    try:
        change = transition(case, status, now, reason, actor)
    except TransitionError as exc:
        # A real status the case cannot take from where it is: a conflict with its state, not a bad request.
        raise (CaseConflictError if status in Case.Status.values else CaseActionError)(str(exc)) from None
    if change is None:
        return case
    case.save(update_fields=["status", "resolved_at", "updated_at"])
    _save_transition(change)
    return case


def do_resolve_case(case: Case, actor: User | None, now: datetime) -> Case:
    return do_change_status(case, Case.Status.RESOLVED, actor, now)


def do_reopen_case(case: Case, actor: User | None, now: datetime) -> Case:
    if case.is_open:
        raise CaseConflictError("the case is already open")
    return do_change_status(case, Case.Status.OPEN, actor, now, Reason.REOPENED)


def do_add_note(case: Case, actor: User, text: str, now: datetime) -> Note:
    text = text.strip()
    if not text:
        raise CaseActionError("a note needs some text")
    note = Note.objects.create(case=case, author=actor, text=text, created_at=now)
    case.updated_at = now
    case.save(update_fields=["updated_at"])
    _record(case, Activity.Kind.NOTE_ADDED, actor, now, note_id=note.pk)
    return note


def do_set_case_labels(
    case: Case,
    actor: User | None,
    now: datetime,
    *,
    topic: str | None = None,
    priority: int | None = None,
    sentiment: str | None = None,
    needs_reply: bool | None = None,
) -> Case:
    changes: dict[str, Any] = {}
    if priority is not None:
        if priority not in Case.Priority.values:
            raise CaseActionError(f"priority must be one of {Case.Priority.values}")
        changes["priority"] = priority
    if topic is not None:
        changes["topic"] = topic
    if sentiment is not None:
        if sentiment not in SENTIMENTS:
            raise CaseActionError("sentiment must be negative, neutral or positive")
        changes["sentiment"] = sentiment
    if needs_reply is not None:
        changes["needs_reply"] = bool(needs_reply)
    changes = {k: v for k, v in changes.items() if getattr(case, k) != v}
    if not changes:
        return case
    for key, value in changes.items():
        setattr(case, key, value)
    case.updated_at = now
    case.save(update_fields=[*changes, "updated_at"])
    _record(case, Activity.Kind.CASE_LABELS, actor, now, **changes)
    return case


def do_record_reply_event(case: Case, kind: str, actor: User | None, now: datetime, **data: Any) -> Activity:
    """For the outbox: put a reply's progress on the case timeline."""
    return _record(case, kind, actor, now, **data)


def do_record_outbound_post(
    case: Case,
    installation: ConnectorInstallation,
    author: Author,
    external_id: str,
    text: str,
    in_reply_to: Post,
    is_direct: bool,
    created_at: datetime,
    now: datetime,
    actor: User | None = None,
) -> Post:
    """Store a reply the desk sent as an outbound post, so a platform echo of it is recognised as ours.
    ``actor``: the agent who wrote the reply."""
    post, _ = Post.objects.get_or_create(
        installation=installation,
        external_id=external_id,
        defaults={
            "author": author,
            "case": case,
            "direction": Post.Direction.OUTBOUND,
            "is_direct": is_direct,
            "text": text,
            "in_reply_to_external_id": in_reply_to.external_id,
            "conversation_external_id": in_reply_to.conversation_external_id or in_reply_to.external_id,
            "created_at": created_at,
            "received_at": now,
        },
    )
    fields = ["updated_at"]
    if case.first_response_at is None:
        case.first_response_at = now
        fields.append("first_response_at")
    answered = None
    if case.status in (Case.Status.NEW, Case.Status.OPEN):
        # Answered: now we wait for the customer.
        answered = transition(case, Case.Status.PENDING, now, Reason.REPLIED, actor)
        fields += ["status", "resolved_at"]
    case.updated_at = now
    case.save(update_fields=fields)
    _save_transition(answered)
    return post


def do_link_author(author: Author, customer: Customer, actor: User | None, now: datetime) -> Author:
    """Attach a platform identity to a customer (one person across channels) of the same brand."""
    if author.brand_id != customer.brand_id:
        raise CaseActionError("an identity can only be linked to a customer of its own brand")
    author.customer = customer
    author.save(update_fields=["customer"])
    for case in Case.objects.filter(customer=customer)[:1]:
        _record(case, Activity.Kind.CASE_LABELS, actor, now, linked_author=author.handle)
    return author


def do_ensure_author(brand_id: int, platform: str, external_id: str, handle: str, name: str = "") -> Author:
    """The brand's Author for a platform account (the brand's own account, when it sends a reply)."""
    author = Author.objects.filter(brand_id=brand_id, platform=platform, external_id=external_id).first()
    if author is None:
        customer = Customer.objects.create(brand_id=brand_id, display_name=name or handle)
        author = Author.objects.create(
            brand_id=brand_id, platform=platform, external_id=external_id, handle=handle, name=name,
            customer=customer,
        )
    return author
