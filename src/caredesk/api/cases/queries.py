"""Reads behind the case endpoints. Each loads everything its schema touches, so a response costs a fixed
number of queries whatever its size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Prefetch, Q, QuerySet

from caredesk.api.cases.schemas import CaseFilters
from caredesk.cases.models import Activity, Author, Case, Note, Post
from caredesk.outbox.models import Reply

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ORDERINGS: dict[str, tuple[str, ...]] = {
    "newest": ("-last_inbound_at", "-id"),
    "urgent": ("-priority", "-urgency", "-last_inbound_at", "-id"),
}


def get_cases(filters: CaseFilters, user: User) -> QuerySet[Case]:
    """Cases matching ``filters`` in their requested order; ``user`` is who ``assignee=me`` means."""
    cases = Case.objects.select_related("brand", "assignee", "customer")
    if filters.status:
        cases = cases.filter(status__in=filters.status)
    if filters.topic:
        cases = cases.filter(topic=filters.topic)
    if filters.priority is not None:
        cases = cases.filter(priority__gte=filters.priority)
    if filters.assignee:
        if filters.assignee == "me":
            cases = cases.filter(assignee=user)
        elif filters.assignee == "none":
            cases = cases.filter(assignee__isnull=True)
        else:
            cases = cases.filter(assignee__username=filters.assignee)
    if filters.brand:
        cases = cases.filter(brand__slug=filters.brand)
    if filters.needs_reply is not None:
        cases = cases.filter(needs_reply=filters.needs_reply)
    if filters.q:
        cases = cases.filter(Q(subject__icontains=filters.q))
    return cases.order_by(*ORDERINGS[filters.ordering])


def get_case_detail(case_id: int) -> Case | None:
    """A case with its thread, replies, notes, timeline and customer identities: seven queries in all."""
    return (
        Case.objects.select_related("brand", "assignee", "customer")
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
