"""The agent inbox: server-rendered pages and HTMX partials.

Views parse, authorize (a logged-in agent), call one action inside ``transaction.atomic()`` and render a partial.
An action's refusal (:class:`~caredesk.cases.actions.CaseActionError`, including the outbox's ``ReplyError``) is
shown in the pane with status 422, never as a 500. Without HTMX every form still works: a POST redirects back to
the case page (or shows the full page with the error).
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

from asgiref.sync import sync_to_async
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.db import close_old_connections, transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from caredesk.accounts.actions import do_log_out
from caredesk.cases.access import AccessDenied, CaseNotFound, Right, access_case, brand_ids_with, check_assignment
from caredesk.cases.actions import (
    CaseActionError,
    do_add_note,
    do_assign_case,
    do_change_status,
    do_reopen_case,
    do_resolve_case,
    do_set_case_labels,
)
from caredesk.cases.models import Case, Post
from caredesk.inbox.actions import do_heartbeat, do_leave_case, get_presence
from caredesk.inbox.forms import (
    AssignForm,
    CaseFilterForm,
    LabelCorrectionForm,
    LabelForm,
    NoteForm,
    PresenceForm,
    ReplyForm,
    SettleReplyForm,
    Sort,
    StatusFilter,
    StatusForm,
    filter_query,
)
from caredesk.inbox.presenters import (
    get_agent,
    get_case,
    get_case_list,
    get_case_view,
    get_composer,
    get_filter_choices,
    get_stream_cursor,
    get_thread_post,
    latest_inbound_post,
)
from caredesk.inbox.stream import event_stream, parse_position
from caredesk.inbox.viewers import session_viewer
from caredesk.outbox.actions import (
    ReplyError,
    do_confirm_reply_posted,
    do_discard_reply,
    do_queue_reply,
    do_retry_reply,
    do_send_reply_again,
)
from caredesk.outbox.models import Reply
from caredesk.triage.actions import do_correct_label, lock_post

V = TypeVar("V", bound=Callable[..., Any])

CASE_CHANGED_EVENT = "caredesk:case-changed"


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def agent_required(view: V) -> V:
    """Login required, answered in a way each kind of client understands: a redirect for pages, an
    ``HX-Redirect`` for HTMX requests (so the login page never lands inside a pane), 403 for the event stream."""

    if asyncio.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = await request.auser()
            if not user.is_authenticated:
                return HttpResponse("login required", status=403, content_type="text/plain")
            return cast(HttpResponseBase, await view(request, *args, **kwargs))

        return cast(V, async_wrapper)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            if is_htmx(request):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = f"{reverse('inbox:login')}?next=/"
                return response
            return redirect_to_login(request.get_full_path())
        return cast(HttpResponseBase, view(request, *args, **kwargs))

    return cast(V, wrapper)


def _agent(request: HttpRequest) -> User:
    return cast(User, request.user)


def _filters(request: HttpRequest) -> dict[str, Any]:
    return CaseFilterForm(request.GET).values()


CHOICES: dict[str, Any] = {
    "status_choices": StatusFilter.CHOICES,
    "sort_choices": Sort.CHOICES,
    "priority_choices": Case.Priority.choices,
}


def _list_context(request: HttpRequest, open_case_id: int | None = None) -> dict[str, Any]:
    filters = _filters(request)
    return {
        **CHOICES,
        "filters": filters,
        "filter_query": filter_query(filters),
        "result": get_case_list(filters, _agent(request)),
        "open_case_id": open_case_id,
        "now": timezone.now(),
    }


def _pane_context(request: HttpRequest, case: Case, **extra: Any) -> dict[str, Any]:
    now = timezone.now()
    return {
        **CHOICES,
        "view": get_case_view(case, _agent(request), now, whole_thread=request.GET.get("thread") == "all"),
        "case": case,
        "now": now,
        **extra,
    }


def _composer_context(case: Case, **extra: Any) -> dict[str, Any]:
    return {"case": case, "composer": get_composer(case), "idempotency_key": uuid.uuid4().hex, **extra}


def _case_or_404(request: HttpRequest, case_id: int) -> Case:
    """The case if this agent may see it; 404 otherwise, whether it is missing or another brand's."""
    case = get_case(_agent(request), case_id)
    if case is None:
        raise Http404("no such case")
    return case


def _locked_case(request: HttpRequest, case_id: int, right: Right = Right.WORK) -> Case:
    """The case row-locked for this request's transaction, if the agent may change it (404 / AccessDenied)."""
    try:
        return access_case(_agent(request), case_id, right=right, for_update=True)
    except CaseNotFound:
        raise Http404("no such case") from None


def _page(request: HttpRequest, case: Case | int | None, status: int = 200, **extra: Any) -> HttpResponse:
    """The whole page; ``case``: the open case, or its id when it has not been read yet (a GET)."""
    # The stream's position first, then every read the page shows (the case again too): an event that commits in
    # between is then both on the page and in the stream, never in neither.
    stream_cursor = get_stream_cursor()
    if case is not None:
        case = _case_or_404(request, case if isinstance(case, int) else case.pk)
    context: dict[str, Any] = {
        **_list_context(request, case.pk if case else None),
        "choices": get_filter_choices(_agent(request)),
        "stream_cursor": stream_cursor,
        "manages_connections": brand_ids_with(_agent(request), Right.ADMINISTER) != frozenset(),
    }
    if case is not None:
        context.update(_pane_context(request, case))
        context.update(_composer_context(case))
    context.update(extra)
    return render(request, "inbox/page.html", context, status=status)


# ---------------------------------------------------------------------------------------------------------------
# Pages and partials (GET)


@never_cache
@require_GET
@agent_required
def inbox(request: HttpRequest) -> HttpResponse:
    return _page(request, None)


@never_cache
@require_GET
@agent_required
def case_list(request: HttpRequest) -> HttpResponse:
    open_case = request.GET.get("open", "")
    context = _list_context(request, int(open_case) if open_case.isdigit() else None)
    context["oob_counts"] = True
    return render(request, "inbox/_case_list.html", context)


@never_cache
@require_GET
@agent_required
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    if not is_htmx(request):
        return _page(request, case_id)  # read once, after the stream's position
    case = _case_or_404(request, case_id)
    context = {**_pane_context(request, case), **_composer_context(case), "as_partial": True}
    return render(request, "inbox/_case_pane.html", context)


@never_cache
@require_GET
@agent_required
def case_live(request: HttpRequest, case_id: int) -> HttpResponse:
    """The parts of the pane that live events refresh: header, presence, thread, sidebar (not the composer)."""
    case = _case_or_404(request, case_id)
    return render(request, "inbox/_case_live.html", _pane_context(request, case))


# ---------------------------------------------------------------------------------------------------------------
# Writes (POST)


def _after_write(request: HttpRequest, case_id: int, error: str = "", status: int = 422) -> HttpResponse:
    case = _case_or_404(request, case_id)
    status = status if error else 200
    if not is_htmx(request):
        if error:
            return _page(request, case, status=status, error=error)
        return HttpResponseRedirect(reverse("inbox:case", args=[case_id]), status=303)
    response = render(request, "inbox/_case_live.html", _pane_context(request, case, error=error), status=status)
    if not error:
        response["HX-Trigger"] = json.dumps({CASE_CHANGED_EVENT: {"case": case_id}})
    return response


def _write(request: HttpRequest, case_id: int, change: Callable[[Case], object]) -> HttpResponse:
    """Lock the case, apply one change in the request's transaction, re-render the pane."""
    try:
        with transaction.atomic():
            change(_locked_case(request, case_id))
    except CaseActionError as exc:
        return _after_write(request, case_id, error=str(exc))
    except AccessDenied as exc:
        return _after_write(request, case_id, error=str(exc), status=403)
    return _after_write(request, case_id)


def _invalid(form: Any) -> str:
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()) or "invalid request"


@require_POST
@agent_required
def case_assign(request: HttpRequest, case_id: int) -> HttpResponse:
    form = AssignForm(request.POST)
    if not form.is_valid():
        return _after_write(request, case_id, error=_invalid(form))
    value = form.cleaned_data["assignee"].strip()
    assignee: User | None
    if value == "me":
        assignee = _agent(request)
    elif value == "":
        assignee = None
    else:
        assignee = get_agent(int(value)) if value.isdigit() else None
        if assignee is None:
            return _after_write(request, case_id, error="no such agent")
    now = timezone.now()

    def change(case: Case) -> Case:
        check_assignment(_agent(request), case, assignee)
        return do_assign_case(case, assignee, _agent(request), now)

    return _write(request, case_id, change)


@require_POST
@agent_required
def case_status(request: HttpRequest, case_id: int) -> HttpResponse:
    form = StatusForm(request.POST)
    if not form.is_valid():
        return _after_write(request, case_id, error=_invalid(form))
    status = form.cleaned_data["status"]
    actor = _agent(request)
    now = timezone.now()

    def change(case: Case) -> Case:
        if status == Case.Status.RESOLVED:
            return do_resolve_case(case, actor, now)
        if status == Case.Status.OPEN and not case.is_open:
            return do_reopen_case(case, actor, now)
        return do_change_status(case, status, actor, now)

    return _write(request, case_id, change)


@require_POST
@agent_required
def case_labels(request: HttpRequest, case_id: int) -> HttpResponse:
    form = LabelForm(request.POST)
    if not form.is_valid():
        return _after_write(request, case_id, error=_invalid(form))
    topic = form.cleaned_data["topic"] or None
    priority = form.cleaned_data["priority"]
    now = timezone.now()
    return _write(
        request, case_id,
        lambda case: do_set_case_labels(case, _agent(request), now, topic=topic, priority=priority),
    )


@require_POST
@agent_required
def post_labels(request: HttpRequest, case_id: int, post_id: int) -> HttpResponse:
    """Correct one triage label of a customer post; re-renders that post (with its labels open)."""
    form = LabelCorrectionForm(request.POST)
    error = ""
    if not form.is_valid():
        error = _invalid(form)
    else:
        now = timezone.now()
        try:
            with transaction.atomic():
                _locked_case(request, case_id)
                post = lock_post(post_id)
                if post is None or post.case_id != case_id:
                    raise Http404("no such post in this case")
                do_correct_label(post, form.cleaned_data["task"], form.cleaned_data["value"], _agent(request), now)
        except (CaseActionError, AccessDenied) as exc:
            error = str(exc)
    case = _case_or_404(request, case_id)
    if not is_htmx(request):
        if error:
            return _page(request, case, status=422, error=error)
        return HttpResponseRedirect(reverse("inbox:case", args=[case_id]) + f"#post-{post_id}", status=303)
    item = get_thread_post(case, post_id)
    if item is None or item.post is None:
        raise Http404("no such post in this case")
    context = {"item": item, "post": item.post, "labels_open": True, "label_error": error}
    response = render(request, "inbox/_thread_post.html", context, status=422 if error else 200)
    if not error:
        response["HX-Trigger"] = json.dumps({CASE_CHANGED_EVENT: {"case": case_id}})
    return response


@require_POST
@agent_required
def reply_retry(request: HttpRequest, case_id: int, reply_id: int) -> HttpResponse:
    now = timezone.now()

    def change(case: Case) -> Reply:
        reply = Reply.objects.select_for_update().filter(pk=reply_id, case=case).first()
        if reply is None:
            raise ReplyError("that reply is not part of this case")
        return do_retry_reply(reply, _agent(request), now)

    return _write(request, case_id, change)


@require_POST
@agent_required
def reply_settle(request: HttpRequest, case_id: int, reply_id: int) -> HttpResponse:
    """An agent decides about a reply whose delivery is unknown: it was posted, send it again, or discard it."""
    form = SettleReplyForm(request.POST)
    if not form.is_valid():
        return _after_write(request, case_id, error=_invalid(form))
    choice, external_id = form.cleaned_data["choice"], form.cleaned_data["external_id"]
    agent, now = _agent(request), timezone.now()

    def change(case: Case) -> Reply:
        reply = (
            Reply.objects.select_for_update(of=("self",))
            .select_related("installation__brand", "in_reply_to")
            .filter(pk=reply_id, case=case)
            .first()
        )
        if reply is None:
            raise ReplyError("that reply is not part of this case")
        if choice == "posted":
            return do_confirm_reply_posted(reply, agent, now, external_id)
        if choice == "again":
            return do_send_reply_again(reply, agent, now)
        return do_discard_reply(reply, agent, now)

    return _write(request, case_id, change)


def _composer_response(
    request: HttpRequest, case_id: int, template: str, *, error: str = "", keep: dict[str, Any] | None = None
) -> HttpResponse:
    """Re-render one composer form (reply or note); on success also the pane's live part, out of band."""
    case = _case_or_404(request, case_id)
    error_key = "reply_error" if template.endswith("_reply_form.html") else "note_error"
    if not is_htmx(request):
        if error:
            return _page(request, case, status=422, **{error_key: error}, **(keep or {}))
        return HttpResponseRedirect(reverse("inbox:case", args=[case_id]), status=303)
    context = _composer_context(case, **{error_key: error}, **(keep or {}))
    if not error:
        context.update(_pane_context(request, case))
        context["oob_live"] = True
    response = render(request, template, context, status=422 if error else 200)
    if not error:
        response["HX-Trigger"] = json.dumps({CASE_CHANGED_EVENT: {"case": case_id}})
    return response


@require_POST
@agent_required
def case_reply(request: HttpRequest, case_id: int) -> HttpResponse:
    form = ReplyForm(request.POST)
    if not form.is_valid():
        return _composer_response(request, case_id, "inbox/_reply_form.html", error=_invalid(form),
                                  keep={"text": request.POST.get("text", "")})
    data = form.cleaned_data
    now = timezone.now()
    try:
        with transaction.atomic():
            # The case lock also serialises two submits of one form, so the second finds the first's reply.
            case = _locked_case(request, case_id)
            if data["in_reply_to"]:
                post = case.posts.filter(pk=data["in_reply_to"], direction=Post.Direction.INBOUND).select_related(
                    "author", "installation").first()
                if post is None:
                    raise ReplyError("that post is not a customer post of this case")
            else:
                post = latest_inbound_post(case)
                if post is None:
                    raise ReplyError("this case has no customer post to answer")
            do_queue_reply(case, post, data["text"], _agent(request), now, idempotency_key=data["idempotency_key"])
    except (CaseActionError, AccessDenied) as exc:
        # Keep the text and the key: nothing was queued, so the same key may be used for the corrected reply.
        return _composer_response(
            request, case_id, "inbox/_reply_form.html", error=str(exc),
            keep={"text": data["text"], "idempotency_key": data["idempotency_key"],
                  "in_reply_to_id": data["in_reply_to"]},
        )
    return _composer_response(request, case_id, "inbox/_reply_form.html")


@require_POST
@agent_required
def case_note(request: HttpRequest, case_id: int) -> HttpResponse:
    form = NoteForm(request.POST)
    text = request.POST.get("text", "")
    if not form.is_valid():
        return _composer_response(request, case_id, "inbox/_note_form.html", error=_invalid(form),
                                  keep={"note_text": text})
    now = timezone.now()
    try:
        with transaction.atomic():
            do_add_note(_locked_case(request, case_id), _agent(request), form.cleaned_data["text"], now)
    except (CaseActionError, AccessDenied) as exc:
        return _composer_response(request, case_id, "inbox/_note_form.html", error=str(exc),
                                  keep={"note_text": text})
    return _composer_response(request, case_id, "inbox/_note_form.html")


# ---------------------------------------------------------------------------------------------------------------
# Presence


@never_cache
@require_http_methods(["GET", "POST"])
@agent_required
def case_presence(request: HttpRequest, case_id: int) -> HttpResponse:
    """GET: who else is on the case (partial). POST: heartbeat of the current agent (``mode`` viewing/replying)."""
    case = _case_or_404(request, case_id)
    now = timezone.now()
    if request.method == "POST":
        form = PresenceForm(request.POST)
        mode = form.cleaned_data["mode"] if form.is_valid() and form.cleaned_data["mode"] else "viewing"
        with transaction.atomic():
            do_heartbeat(case, _agent(request), mode, now)
        return HttpResponse(status=204)
    return render(request, "inbox/_presence.html",
                  {"case": case, "presence": get_presence(case, now, exclude=_agent(request))})


@require_POST
@agent_required
def case_leave(request: HttpRequest, case_id: int) -> HttpResponse:
    case = _case_or_404(request, case_id)
    with transaction.atomic():
        do_leave_case(case, _agent(request))
    return HttpResponse(status=204)


# ---------------------------------------------------------------------------------------------------------------
# Live events


class LogoutView(auth_views.LogoutView):
    """Django's logout, through :func:`do_log_out` so that the session's open live stream ends too."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        do_log_out(request)
        return super().post(request, *args, **kwargs)


@agent_required
async def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Server-Sent Events; see :mod:`caredesk.inbox.stream` for the protocol. Resumes after ``Last-Event-ID``
    (sent by a reconnecting EventSource) or ``?cursor=`` (the position the page was rendered at)."""
    named = request.headers.get("Last-Event-ID") or request.GET.get("cursor")
    position = parse_position(named)
    viewer = await session_viewer(request)
    # The login check opened this request's Django connection; the stream reads through the process-wide hub, so
    # do not keep one idle database connection per open browser tab for hours.
    await sync_to_async(close_old_connections)()
    body = event_stream(position, viewer, resumed_unknown=bool(named) and position is None)
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response

