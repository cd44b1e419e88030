"""Schema pieces shared by every router: UTC datetimes, ids, users and the error body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from ninja import Schema
from ninja.params import functions as params
from ninja.schema import DjangoGetter
from pydantic import AfterValidator, GetJsonSchemaHandler, model_validator

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


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


# The same rules as patterns in the OpenAPI schema, so a client (or a generated test) knows that a NUL or a blank
# text is refused before it sends one. Only documented: the validators above do the checking, lone surrogates
# included, which no pattern can name (JSON Schema's regex engines work on code points that exclude them).
# Whitespace is spelled out as the characters ``str.strip()`` strips, since ``\s`` means a slightly different
# set in Python, ECMAScript and Rust regexes.
_WHITESPACE = "\\t-\\r\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
STORABLE_PATTERN = "^[^\\u0000]*$"
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^{_WHITESPACE}\\u0000][^\\u0000]*$"


class _Documented:
    """Adds keywords (``pattern``...) to a string's JSON schema, keeping the others (``maxLength``...)."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema: dict[str, Any] = handler(schema)
        json_schema.update(self.keywords)
        return json_schema


# Every string the API accepts: one PostgreSQL can store or compare, so a stray NUL or a half emoji is a 422,
# not a 500.
Text = Annotated[str, AfterValidator(_storable), _Documented(pattern=STORABLE_PATTERN)]
# A text that must say something (a reply, a note): whitespace alone is refused as the actions refuse it.
# minLength is only documented, like the pattern: pydantic's own length check would turn a lone surrogate into
# "unable to parse raw data" before _storable could say what is wrong.
NonBlankText = Annotated[
    str, AfterValidator(_storable), AfterValidator(_not_blank), _Documented(minLength=1, pattern=NOT_BLANK_PATTERN)
]

# Every datetime the API returns is ISO 8601 in UTC ("2026-11-23T12:00:00Z").
UTCDateTime = Annotated[datetime, AfterValidator(_as_utc)]

CaseId = Annotated[int, params.Path(ge=1, le=MAX_ID, description="Case id")]
ReplyId = Annotated[int, params.Path(ge=1, le=MAX_ID, description="Reply id")]
PostId = Annotated[int, params.Path(ge=1, le=MAX_ID, description="Post id")]


class BodyIn(Schema):
    """A request body, which must be a JSON object.

    Ninja's schemas read fields as attributes (so that they can take model instances), which would let ``[]``,
    ``3`` or ``"x"`` through as an object with every field left out: a PATCH that changes nothing, answered 200.
    """

    @model_validator(mode="before")
    @classmethod
    def _json_object(cls, data: Any) -> Any:
        if not isinstance(data._obj if isinstance(data, DjangoGetter) else data, dict):
            raise ValueError("the body must be a JSON object")
        return data


class ErrorOut(Schema):
    """Every error the API returns: ``detail`` is a message a person can act on."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class UserRef(Schema):
    id: int
    username: str
