from __future__ import annotations

from ninja import Field, Schema

from caredesk.api.schemas import MAX_ID, BodyIn, NonBlankText, Text, UTCDateTime
from caredesk.outbox.models import Reply


class ReplyIn(BodyIn):
    text: NonBlankText = Field(
        description="The reply as the customer sees it; checked against the platform's limit."
    )
    in_reply_to: int | None = Field(
        None, ge=1, le=MAX_ID, description="Id of the post to answer; default: the latest inbound post."
    )
    idempotency_key: Text | None = Field(
        None,
        min_length=1,
        max_length=80,
        description="Sending the same key again returns the same reply instead of queueing a second one. "
        "The `Idempotency-Key` header does the same.",
    )


class ReplyOut(Schema):
    id: int
    case_id: int
    state: Reply.State
    text: str
    in_reply_to: int = Field(description="Id of the post this reply answers.")
    author: str = Field(description="Username of the agent who wrote it.")
    is_direct: bool
    idempotency_key: str
    attempts: int
    error: str
    external_id: str = Field(description="The platform's id once sent; empty before.")
    post_id: int | None = Field(description="The outbound post recorded once sent.")
    created_at: UTCDateTime
    sent_at: UTCDateTime | None

    @staticmethod
    def resolve_in_reply_to(obj: Reply) -> int:
        return obj.in_reply_to_id

    @staticmethod
    def resolve_author(obj: Reply) -> str:
        return obj.author.get_username()
