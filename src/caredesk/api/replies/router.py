from __future__ import annotations

from django.http import HttpRequest
from ninja import Router
from ninja.errors import HttpError

from caredesk.api.replies.schemas import ReplyOut
from caredesk.api.schemas import ErrorOut, ReplyId
from caredesk.cases.access import visible_brand_ids
from caredesk.outbox.models import Reply

router = Router(tags=["replies"])


@router.get(
    "/{reply_id}",
    response={200: ReplyOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    summary="A reply and its delivery state",
)
def get_reply(request: HttpRequest, reply_id: ReplyId) -> Reply:
    brands = visible_brand_ids(request.auth)  # type: ignore[attr-defined]  # the API's auth sets it
    replies = Reply.objects.select_related("author")
    if brands is not None:
        replies = replies.filter(case__brand_id__in=brands)
    reply = replies.filter(pk=reply_id).first()
    if reply is None:
        raise HttpError(404, f"reply {reply_id} does not exist")
    return reply
