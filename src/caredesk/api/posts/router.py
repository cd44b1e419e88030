"""Post endpoints. Like the case endpoints, a handler parses, runs one action inside ``transaction.atomic()`` with
the rows it changes locked, and holds no business rules of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.http import HttpRequest
from ninja import Router
from ninja.errors import HttpError

from caredesk.api.posts.schemas import LabelIn, PostLabelsOut, labels_of
from caredesk.api.schemas import ErrorOut, PostId
from caredesk.cases.access import AccessDenied, PostNotFound, Right, access_post
from caredesk.cases.models import Post
from caredesk.triage.actions import do_correct_label, lock_post
from caredesk.triage.models import LabelCorrection

if TYPE_CHECKING:
    from django.contrib.auth.models import User

router = Router(tags=["posts"])


def _agent(request: HttpRequest) -> User:
    user: User = request.auth  # type: ignore[attr-defined]  # set by the API's auth (token or session)
    return user


def get_post_labels(post_id: int) -> dict[str, Any]:
    post = Post.objects.only("pk", "case_id", "triage").get(pk=post_id)
    corrections = LabelCorrection.objects.filter(post_id=post_id).select_related("agent").order_by("task")
    return {
        "post_id": post.pk,
        "case_id": post.case_id,
        "labels": labels_of(post.triage),
        "corrections": [
            {"task": c.task, "value": c.value, "previous_value": c.previous_value,
             "agent": c.agent.get_username() if c.agent is not None else None, "created_at": c.created_at}
            for c in corrections
        ],
    }


@router.post(
    "/{post_id}/labels",
    response={200: PostLabelsOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    summary="Correct a triage label of a customer post",
    description="Stores the correction (training data for the brand's own model), shows it on the post and, for "
    "topic, sentiment and needs_reply, on its case where this post decides the case's label. 422 for an unknown "
    "task, a value the task does not accept, or a post the desk sent.",
)
def correct_post_label(request: HttpRequest, post_id: PostId, payload: LabelIn) -> dict[str, Any]:
    now = datetime.now(UTC)
    with transaction.atomic():
        try:
            access_post(_agent(request), post_id, right=Right.WORK)
        except PostNotFound:
            raise HttpError(404, f"post {post_id} does not exist") from None
        except AccessDenied as exc:
            raise HttpError(403, str(exc)) from None
        post = lock_post(post_id)
        if post is None:
            raise HttpError(404, f"post {post_id} does not exist")
        do_correct_label(post, payload.task, str(payload.value), _agent(request), now)
    return get_post_labels(post_id)
