"""The one case-list query builder, shared by the inbox and the API: both start from the cases the user may see
(:func:`caredesk.cases.access.visible_cases`), so a list can never show another brand's case."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from django.db.models import QuerySet

from caredesk.cases.access import visible_cases
from caredesk.cases.models import Case
from caredesk.cases.paging import Tally, bounded_counts

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Ordering = Literal["newest", "urgent"]

ORDERINGS: dict[str, tuple[str, ...]] = {
    "newest": ("-last_inbound_at", "-id"),
    "urgent": ("-priority", "-urgency", "-last_inbound_at", "-id"),
}


@dataclass(frozen=True)
class CaseQuery:
    """What to list. Every filter is optional and they combine with AND.

    ``assignee``: ``"me"``, ``"none"`` (unassigned), a username, or a user id.
    """

    statuses: Collection[str] = ()
    topic: str | None = None
    priority: int | None = None  # exactly this priority
    min_priority: int | None = None  # at least this priority
    assignee: str | int | None = None
    brand_id: int | None = None
    brand_slug: str | None = None
    needs_reply: bool | None = None
    text: str | None = None
    ordering: Ordering = "newest"


def filter_cases(user: User, query: CaseQuery) -> QuerySet[Case]:
    """The cases ``user`` may see that match ``query``, in its order."""
    cases = visible_cases(user)
    if query.statuses:
        cases = cases.filter(status__in=list(query.statuses))
    if query.topic:
        cases = cases.filter(topic=query.topic)
    if query.priority is not None:
        cases = cases.filter(priority=query.priority)
    if query.min_priority is not None:
        cases = cases.filter(priority__gte=query.min_priority)
    if query.assignee is not None:
        if query.assignee == "me":
            cases = cases.filter(assignee_id=user.pk)
        elif query.assignee == "none":
            cases = cases.filter(assignee__isnull=True)
        elif isinstance(query.assignee, int):
            cases = cases.filter(assignee_id=query.assignee)
        else:
            cases = cases.filter(assignee__username=query.assignee)
    if query.brand_id is not None:
        cases = cases.filter(brand_id=query.brand_id)
    if query.brand_slug:
        cases = cases.filter(brand__slug=query.brand_slug)
    if query.needs_reply is not None:
        cases = cases.filter(needs_reply=query.needs_reply)
    if query.text:
        # ``UPPER(subject) LIKE UPPER('%text%')``: answered by the trigram index on UPPER(subject)
        # (case_subject_trgm_idx), whatever the word's position in the subject.
        cases = cases.filter(subject__icontains=query.text)
    return cases.order_by(*ORDERINGS[query.ordering])


def queue_querysets(user: User, brand_id: int | None = None) -> dict[str, QuerySet[Case]]:
    """Active (not resolved) cases the user may see, per queue (all, unassigned, mine)."""
    cases = visible_cases(user).filter(status__in=Case.OPEN_STATUSES)
    if brand_id:
        cases = cases.filter(brand_id=brand_id)
    return {
        "all": cases,
        "unassigned": cases.filter(assignee__isnull=True),
        "mine": cases.filter(assignee_id=user.pk),
    }


def queue_counts(user: User, brand_id: int | None = None) -> dict[str, Tally]:
    """The queues' counts: exact up to a thousand, estimated beyond (a count of every active case on each page
    view is what made the inbox slow at a million cases)."""
    return bounded_counts(queue_querysets(user, brand_id))
