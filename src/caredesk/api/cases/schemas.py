from __future__ import annotations

from typing import Any, Literal

from ninja import Field, Schema
from pydantic import field_validator

from caredesk.api.replies.schemas import ReplyOut
from caredesk.api.schemas import BodyIn, NonBlankText, Text, UTCDateTime
from caredesk.cases.models import Activity, Author, Case, Customer, Note, Post
from caredesk.triage.vocabulary import Sentiment

PRIORITY_LABELS = dict(Case.Priority.choices)

# OFFSET reads and throws away every row it skips: at 900,000 that was 3 s of database time per request, open to
# anyone with a token. Cursors page to any depth at the cost of the first page.
MAX_OFFSET = 10_000

# ---- query parameters ----------------------------------------------------------------------------------


class CaseFilters(Schema):
    """Filters and ordering of ``GET /api/cases``. Filters combine with AND."""

    status: list[Case.Status] = Field(
        default_factory=list,
        description="Any of these statuses: repeat the parameter or separate with commas (`new,open`).",
    )
    topic: Text | None = Field(None, max_length=40, description="Exact topic key, e.g. `billing`.")
    priority: int | None = Field(
        None, ge=1, le=4, description="Minimum priority: 1 low, 2 normal, 3 high, 4 urgent."
    )
    assignee: Text | None = Field(
        None, max_length=150, description="`me`, `none` (unassigned) or a username."
    )
    brand: Text | None = Field(None, max_length=60, description="Brand slug.")
    needs_reply: bool | None = None
    q: Text | None = Field(None, max_length=200, description="Text to find in the subject (case-insensitive).")
    ordering: Literal["newest", "urgent"] = Field(
        "newest",
        description="`newest`: latest customer message first. `urgent`: highest priority and urgency first.",
    )
    limit: int = Field(50, ge=1, le=200, description="Page size, at most 200.")
    cursor: Text | None = Field(
        None, max_length=400,
        description="Where the page starts: a `next_cursor` or `previous_cursor` of an earlier page of the same "
        "`ordering`. Every page costs the same however deep it is. A cursor we did not make (or one for the other "
        "ordering) is a 400.",
    )
    offset: int = Field(
        0, ge=0, le=MAX_OFFSET,
        description=f"Rows to skip; kept for existing clients, at most {MAX_OFFSET:,}. Skipping reads every row "
        "skipped, so a deep offset is slow: use `cursor` instead. Not together with `cursor`.",
    )

    @field_validator("status", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        return value


# ---- responses -----------------------------------------------------------------------------------------


class AuthorOut(Schema):
    id: int
    platform: str
    handle: str
    name: str
    followers: int
    verified: bool


class CustomerRef(Schema):
    id: int
    display_name: str


class CustomerOut(Schema):
    id: int
    display_name: str
    external_account_id: str
    authors: list[AuthorOut] = Field(description="The customer's identities on each platform.")

    @staticmethod
    def resolve_authors(obj: Customer) -> list[Author]:
        return list(obj.authors.all())


class CaseOut(Schema):
    id: int
    brand: str = Field(description="Brand slug.")
    subject: str
    status: Case.Status
    priority: int = Field(description="1 low, 2 normal, 3 high, 4 urgent.")
    priority_label: str
    topic: str
    sentiment: str
    urgency: float
    needs_reply: bool
    assignee: str | None = Field(description="Username, or null when unassigned.")
    customer: CustomerRef
    created_at: UTCDateTime
    updated_at: UTCDateTime
    last_inbound_at: UTCDateTime
    first_response_at: UTCDateTime | None
    resolved_at: UTCDateTime | None

    @staticmethod
    def resolve_brand(obj: Case) -> str:
        return obj.brand.slug

    @staticmethod
    def resolve_priority_label(obj: Case) -> str:
        return str(PRIORITY_LABELS.get(obj.priority, obj.priority))

    @staticmethod
    def resolve_assignee(obj: Case) -> str | None:
        return obj.assignee.get_username() if obj.assignee is not None else None


class CasePage(Schema):
    count: int = Field(
        description="Cases matching the filters, over all pages: exact up to 1,000, beyond that the database's "
        "estimate (see `count_is_estimate`)."
    )
    count_is_estimate: bool = Field(description="True when `count` is an estimate (more than 1,000 cases).")
    limit: int
    offset: int
    next_offset: int | None = Field(
        description="Offset of the next page when paging by offset (and within the offset limit); else null."
    )
    next_cursor: str | None = Field(description="`cursor` of the next (older) page; null on the last one.")
    previous_cursor: str | None = Field(
        description="`cursor` of the previous (newer) page; null on the first one."
    )
    items: list[CaseOut]


class PostOut(Schema):
    id: int
    external_id: str
    direction: Post.Direction
    is_direct: bool
    author: AuthorOut
    text: str
    language: str
    url: str
    in_reply_to_external_id: str
    conversation_external_id: str
    created_at: UTCDateTime
    received_at: UTCDateTime
    triage: dict[str, Any] = Field(description="Triage labels with scores and reasons.")


class NoteOut(Schema):
    id: int
    author: str = Field(description="Username.")
    text: str
    created_at: UTCDateTime

    @staticmethod
    def resolve_author(obj: Note) -> str:
        return obj.author.get_username()


class ActivityOut(Schema):
    id: int
    kind: str = Field(description="One of: " + ", ".join(Activity.Kind.values))
    actor: str | None = Field(description="Username; null for the system (ingest, send jobs).")
    data: dict[str, Any]
    created_at: UTCDateTime

    @staticmethod
    def resolve_actor(obj: Activity) -> str | None:
        return obj.actor.get_username() if obj.actor is not None else None


class CaseDetailOut(CaseOut):
    customer: CustomerOut  # type: ignore[assignment]
    posts: list[PostOut] = Field(description="The thread, both directions, oldest first.")
    replies: list[ReplyOut] = Field(description="Replies written in the desk, oldest first, with state.")
    notes: list[NoteOut]
    timeline: list[ActivityOut] = Field(description="Every event on the case, oldest first.")

    @staticmethod
    def resolve_posts(obj: Case) -> list[Post]:
        return list(obj.posts.all())

    @staticmethod
    def resolve_timeline(obj: Case) -> list[Activity]:
        return list(obj.activities.all())


# ---- request bodies ------------------------------------------------------------------------------------


class AssignIn(BodyIn):
    assignee: Text | None = Field(
        description="A username, `me`, or null (or `none`) to unassign.", min_length=1, max_length=150
    )


class NoteIn(BodyIn):
    text: NonBlankText = Field(description="Internal note; never sent to the customer.")


class CasePatch(BodyIn):
    """Corrections of the triage labels, or a status change. Fields left out stay as they are."""

    topic: Text | None = Field(None, min_length=1, max_length=40)
    priority: int | None = Field(None, ge=1, le=4, description="1 low, 2 normal, 3 high, 4 urgent.")
    sentiment: Sentiment | None = None
    status: Case.Status | None = None
