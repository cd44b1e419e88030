"""Schema pieces shared by every router: UTC datetimes, ids, users and the error body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from ninja import Schema
from ninja.params import functions as params
from pydantic import AfterValidator

# PostgreSQL bigint: a larger id in a path or body could only fail in the database, so it is refused up front.
MAX_ID = 2**63 - 1


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime")  # the database only holds aware ones; this would be a bug
    return value.astimezone(UTC)


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")  # PostgreSQL text cannot hold them
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A "\ud83d" escape without its pair decodes to a lone surrogate, which has no UTF-8 form.
            raise ValueError("must not contain lone UTF-16 surrogates (an unpaired \\ud800-\\udfff escape)") from None
    return value


# Every string the API accepts: one PostgreSQL can store or compare, so a stray NUL or a half emoji is a 422,
# not a 500.
Text = Annotated[str, AfterValidator(_storable)]

# Every datetime the API returns is ISO 8601 in UTC ("2026-11-23T12:00:00Z").
UTCDateTime = Annotated[datetime, AfterValidator(_as_utc)]

CaseId = Annotated[int, params.Path(ge=1, le=MAX_ID, description="Case id")]
ReplyId = Annotated[int, params.Path(ge=1, le=MAX_ID, description="Reply id")]
PostId = Annotated[int, params.Path(ge=1, le=MAX_ID, description="Post id")]


class ErrorOut(Schema):
    """Every error the API returns: ``detail`` is a message a person can act on."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class UserRef(Schema):
    id: int
    username: str
