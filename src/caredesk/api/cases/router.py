"""Case endpoints. Each handler parses, authorizes, then runs one action (or a pair that belongs together)
inside ``transaction.atomic()`` with the case row locked; it holds no business rules of its own.

Authorization: the API auth on the ``NinjaAPI`` makes sure there is an active user; every case is then fetched
through :mod:`caredesk.cases.access`, so a case of a brand the user does not belong to is a 404, exactly like a
missing one, and a change their role does not allow is a 403.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from ninja import Query, Router, Status
from ninja.errors import HttpError
from ninja.params import functions as params

from caredesk.api.cases.queries import get_case_detail, get_case_summary, get_cases, get_latest_inbound_post
from caredesk.api.cases.schemas import (
    MAX_OFFSET,
    AssignIn,
    CaseDetailOut,
    CaseFilters,
    CaseOut,
    CasePage,
    CasePatch,
    NoteIn,
    NoteOut,
)
from caredesk.api.replies.schemas import ReplyIn, ReplyOut
from caredesk.api.schemas import CaseId, ErrorOut, Text
from caredesk.cases.access import AccessDenied, CaseNotFound, Right, access_case, check_assignment
from caredesk.cases.actions import (
    do_add_note,
    do_assign_case,
    do_change_status,
    do_reopen_case,
    do_resolve_case,
    do_set_case_labels,
)
from caredesk.cases.models import Case, Note, Post
from caredesk.cases.paging import BadCursor, KeysetPage, bounded_count, decode_cursor, encode_cursor, keyset_page
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply

if TYPE_CHECKING:
    from django.contrib.auth.models import User

router = Router(tags=["cases"])

# Documented error responses: 401 without a valid token or session; 403 for a change the caller's role does not
# allow; 404 for a case that is not there or of another brand (the same answer); 422 for a request that breaks
# the schema (an id that is not a positive bigint too) or a rule; 400 for a body that is not JSON at all.
NOT_FOUND = {401: ErrorOut, 404: ErrorOut, 422: ErrorOut}
REFUSED = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
WITH_BODY = {400: ErrorOut, **REFUSED}


def _agent(request: HttpRequest) -> User:
    user: User = request.auth  # type: ignore[attr-defined]  # set by the API's auth (token or session)
    return user


def _now() -> datetime:
    return datetime.now(UTC)


def _locked_case(request: HttpRequest, case_id: int, right: Right = Right.WORK) -> Case:
    """The case, row-locked until the request's transaction ends, if the caller may change it.

    404 when it does not exist or is another brand's (the same answer, so its existence does not leak); 403 when
    the caller sees it but their role does not allow the change.
    """
    try:
        return access_case(_agent(request), case_id, right=right, for_update=True)
    except CaseNotFound:
        raise HttpError(404, f"case {case_id} does not exist") from None
    except AccessDenied as exc:
        raise HttpError(403, str(exc)) from None


def _find_assignee(name: str | None, request: HttpRequest) -> User | None:
    if name is None or name == "none":
        return None
    if name == "me":
        return _agent(request)
    user: User | None = get_user_model().objects.filter(username=name, is_active=True).first()
    if user is None:
        raise HttpError(422, f"no active user named {name!r}")
    return user


@router.get("", response={200: CasePage, 400: ErrorOut, 401: ErrorOut, 422: ErrorOut}, summary="List cases")
def list_cases(request: HttpRequest, filters: Query[CaseFilters]) -> dict[str, object]:
    """Pages by `cursor` (`next_cursor` of the page before): as fast deep in the list as at its top."""
    if filters.cursor and filters.offset:
        raise HttpError(422, "offset: not together with cursor (a cursor already says where the page starts)")
    cursor = None
    if filters.cursor:
        try:
            cursor = decode_cursor(filters.cursor, filters.ordering)
        except BadCursor as exc:
            raise HttpError(400, f"{exc}; start again without a cursor") from None
    cases = get_cases(filters, _agent(request))
    count = bounded_count(cases)
    if filters.offset:
        rows = list(cases[filters.offset : filters.offset + filters.limit + 1])
        items = rows[: filters.limit]
        more = len(rows) > filters.limit
        page = KeysetPage(items, encode_cursor(items[-1], filters.ordering, "older") if more else None,
                          encode_cursor(items[0], filters.ordering, "newer") if items else None)
        end = filters.offset + len(items)
        next_offset = end if more and end <= MAX_OFFSET else None
    else:
        page = keyset_page(cases, filters.ordering, filters.limit, cursor)
        more = page.older is not None
        next_offset = filters.limit if cursor is None and more and filters.limit <= MAX_OFFSET else None
    return {
        "count": count.value,
        "count_is_estimate": not count.exact,
        "limit": filters.limit,
        "offset": filters.offset,
        "next_offset": next_offset,
        "next_cursor": page.older,
        "previous_cursor": page.newer,
        "items": page.items,
    }


@router.get("/{case_id}", response={200: CaseDetailOut, **NOT_FOUND}, summary="A case with its whole story")
def get_case(request: HttpRequest, case_id: CaseId) -> Case:
    case = get_case_detail(_agent(request), case_id)
    if case is None:
        raise HttpError(404, f"case {case_id} does not exist")
    return case


@router.patch(
    "/{case_id}",
    response={200: CaseOut, 409: ErrorOut, **WITH_BODY},
    summary="Correct labels or change the status",
    description="409 when the case cannot take that status from the one it has (a resolved case is reopened, "
    "never made pending).",
)
def patch_case(request: HttpRequest, case_id: CaseId, payload: CasePatch) -> Case:
    actor, now = _agent(request), _now()
    with transaction.atomic():
        case = _locked_case(request, case_id)
        do_set_case_labels(
            case, actor, now, topic=payload.topic, priority=payload.priority, sentiment=payload.sentiment
        )
        if payload.status is not None:
            do_change_status(case, payload.status, actor, now)
    return get_case_summary(case_id)


@router.post(
    "/{case_id}/replies",
    response={202: ReplyOut, 200: ReplyOut, 409: ErrorOut, **WITH_BODY},
    summary="Queue a reply to the customer",
    description="202 with the queued reply. With an idempotency key already used on this case: 200 with the "
    "existing reply, nothing queued again. 422 when the text is empty or too long for the platform. 409 when the "
    "idempotency key belongs to a reply of another case.",
)
def queue_reply(
    request: HttpRequest,
    case_id: CaseId,
    payload: ReplyIn,
    idempotency_key: Annotated[
        Text | None, params.Header(None, alias="Idempotency-Key", min_length=1, max_length=80)
    ] = None,
) -> Status[Reply]:
    if idempotency_key and payload.idempotency_key and idempotency_key != payload.idempotency_key:
        raise HttpError(422, "the Idempotency-Key header and the body's idempotency_key differ")
    key = payload.idempotency_key or idempotency_key
    actor, now = _agent(request), _now()
    try:
        with transaction.atomic():
            case = _locked_case(request, case_id)
            # Under the case lock a retry of this request cannot slip in between this check and the action.
            repeated = key is not None and Reply.objects.filter(idempotency_key=key, case=case).exists()
            if payload.in_reply_to is None:
                post = get_latest_inbound_post(case)
                if post is None:
                    raise HttpError(422, "the case has no inbound post to reply to")
            else:
                posts = Post.objects.select_related("installation", "author")
                post = posts.filter(pk=payload.in_reply_to, case=case).first()
                if post is None:
                    raise HttpError(422, f"post {payload.in_reply_to} is not a post of this case")
            reply = do_queue_reply(case, post, payload.text, actor, now, idempotency_key=key)
    except IntegrityError:
        # The same key sent to two different cases at the same instant: the unique index let one through.
        raise HttpError(409, "that idempotency key is being used by another request") from None
    return Status(200 if repeated else 202, Reply.objects.select_related("author").get(pk=reply.pk))


@router.post("/{case_id}/assign", response={200: CaseOut, **WITH_BODY}, summary="Assign or unassign")
def assign_case(request: HttpRequest, case_id: CaseId, payload: AssignIn) -> Case:
    actor, now = _agent(request), _now()
    with transaction.atomic():
        case = _locked_case(request, case_id)
        assignee = _find_assignee(payload.assignee, request)
        try:
            check_assignment(actor, case, assignee)
        except AccessDenied as exc:
            raise HttpError(403, str(exc)) from None
        do_assign_case(case, assignee, actor, now)
    return get_case_summary(case_id)


@router.post("/{case_id}/resolve", response={200: CaseOut, **REFUSED}, summary="Resolve")
def resolve_case(request: HttpRequest, case_id: CaseId) -> Case:
    actor, now = _agent(request), _now()
    with transaction.atomic():
        do_resolve_case(_locked_case(request, case_id), actor, now)
    return get_case_summary(case_id)


@router.post("/{case_id}/reopen", response={200: CaseOut, 409: ErrorOut, **REFUSED}, summary="Reopen a resolved case")
def reopen_case(request: HttpRequest, case_id: CaseId) -> Case:
    actor, now = _agent(request), _now()
    with transaction.atomic():
        do_reopen_case(_locked_case(request, case_id), actor, now)
    return get_case_summary(case_id)


@router.post("/{case_id}/notes", response={201: NoteOut, **WITH_BODY}, summary="Add an internal note")
def add_note(request: HttpRequest, case_id: CaseId, payload: NoteIn) -> Status[Note]:
    actor, now = _agent(request), _now()
    with transaction.atomic():
        note = do_add_note(_locked_case(request, case_id), actor, payload.text, now)
    return Status(201, note)
