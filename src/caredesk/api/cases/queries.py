"""Reads behind the case endpoints. Each loads everything its schema touches, so a response costs a fixed
number of queries whatever its size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Prefetch, QuerySet

from caredesk.api.cases.schemas import CaseFilters
from caredesk.cases.access import visible_cases
from caredesk.cases.models import Activity, Author, Case, Note, Post
from caredesk.cases.queries import CaseQuery, filter_cases
from caredesk.outbox.models import Reply

if TYPE_CHECKING:
    from django.contrib.auth.models import User

def get_cases(filters: CaseFilters, user: User) -> QuerySet[Case]:
    """Cases ``user`` may see matching ``filters`` in their requested order (the inbox's query builder)."""
    query = CaseQuery(
        statuses=tuple(filters.status),
        topic=filters.topic,
        min_priority=filters.priority,
        assignee=filters.assignee,
        brand_slug=filters.brand,
        needs_reply=filters.needs_reply,
        text=filters.q,
        ordering=filters.ordering,
    )
    return filter_cases(user, query).select_related("brand", "assignee", "customer")


def get_case_detail(user: User, case_id: int) -> Case | None:
    """A case ``user`` may see, with its thread, replies, notes, timeline and customer identities: seven queries in
    all (eight with the membership lookup)."""
    return (
        visible_cases(user).select_related("brand", "assignee", "customer")
        .prefetch_related(
            Prefetch("customer__authors", queryset=Author.objects.order_by("platform", "handle", "id")),
            Prefetch("posts", queryset=Post.objects.select_related("author").order_by("created_at", "id")),
            Prefetch("replies", queryset=Reply.objects.select_related("author").order_by("created_at", "id")),
            Prefetch("notes", queryset=Note.objects.select_related("author").order_by("created_at", "id")),
            Prefetch("activities", queryset=Activity.objects.select_related("actor").order_by("id")),
        )
        .filter(pk=case_id)
        .first()
    )


def get_case_summary(case_id: int) -> Case:
    return Case.objects.select_related("brand", "assignee", "customer").get(pk=case_id)


def get_latest_inbound_post(case: Case) -> Post | None:
    return case.posts.filter(direction=Post.Direction.INBOUND).order_by("-created_at", "-id").first()
