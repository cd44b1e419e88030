"""Read posts from a JSONL or CSV export, one record at a time.

A bad record never stops an import: it comes out as a :class:`RejectedRecord` with its line number and a
reason an operator can act on, and the rest of the file is still used. Only problems with the file as a whole
(an unknown format, a CSV header without the required columns, an unreadable file) raise
:class:`ConnectorError`.

Fields, flat in CSV and JSONL alike: ``id``, ``text`` (or the configured text column), ``created_at`` (ISO
8601 with a UTC offset, or unix seconds), ``author_id``, ``author_handle``, ``author_name``,
``author_followers``, ``author_verified``, ``in_reply_to``, ``conversation``, ``direct``, ``lang``, ``url``.
JSONL may instead carry the replay script's nested ``author`` object (``id``, ``handle``, ``name``,
``followers``, ``verified``). Other fields are kept in ``raw`` and otherwise ignored.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from caredesk.connectors.base import (
    ConnectorError,
    FetchResult,
    MalformedPayload,
    NormalizedAuthor,
    NormalizedPost,
    RejectedRecord,
    unstorable,
)

Format = Literal["jsonl", "csv"]
# A path, or anything that yields lines: an open file, an upload, a generator.
Source = str | os.PathLike[str] | Iterable[str] | Iterable[bytes]
ParsedRecord = tuple[int, NormalizedPost | RejectedRecord]

_EXTENSIONS: Mapping[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# The widths of the columns these fields are stored in: a longer value would fail the whole ingest
# transaction, so it is rejected here with the rest of the batch intact.
_MAX_LENGTHS: Mapping[str, int] = {
    "id": 200,
    "in_reply_to": 200,
    "conversation": 200,
    "author_id": 200,
    "author_handle": 200,
    "author_name": 200,
    "lang": 12,
    "url": 500,
}
_MAX_FOLLOWERS = 2_147_483_647  # PositiveIntegerField
# The longest post text accepted, in CSV and JSONL alike (long enough for a blog post or a long DM thread).
MAX_TEXT_CHARS = 100_000
# A whole record, all its fields: past this, a CSV record is taken for an unclosed quote.
MAX_RECORD_CHARS = 4 * MAX_TEXT_CHARS
# JSON numbers with more digits than this are refused before Python parses them (its int parser refuses
# 4,300 digits with a ValueError, and nothing in a post needs more than a 64-bit id).
_MAX_NUMBER_DIGITS = 40
# Real UTC offsets lie within -12:00 and +14:00 and are whole minutes.
_MAX_OFFSET = timedelta(hours=14)

# The csv module's own limit (128 KiB a field) would refuse texts that JSONL accepts; ours applies to both.
csv.field_size_limit(MAX_RECORD_CHARS)
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0", ""})
_UNIX_SECONDS = re.compile(r"^-?\d+(\.\d+)?$")


def detect_format(name: str) -> Format:
    """The format a file name implies; a trailing ``.gz`` is looked through."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if found is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise ConnectorError(
            f"cannot tell the format of {Path(name).name!r}: use one of {known} or name a format"
        )
    return found


def iter_records(
    source: Source, format: Format | None = None, *, text_column: str = "text"
) -> Iterator[ParsedRecord]:
    """Yield ``(line, post_or_rejection)`` for each record, reading ``source`` a line at a time.

    ``source`` is a path (``.gz`` is decompressed) or an open text or binary stream, which stays open; bytes
    are read as UTF-8. ``line`` is the 1-based line on which the record starts, so an operator can find it.
    The format comes from the file name unless given. A repeated id is rejected, naming the line that had it
    first; the ids seen are kept in memory, which is the one cost that grows with the file.
    """
    with ExitStack() as stack:
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            fmt = format or detect_format(path.name)
            try:
                stream: Iterable[str | bytes] = stack.enter_context(
                    gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")
                )
            except OSError as exc:
                raise ConnectorError(f"cannot open {path.name!r}: {exc.strerror}") from exc
        else:
            name = getattr(source, "name", None)
            if format is None and not isinstance(name, str):
                raise ConnectorError("cannot tell the format of an unnamed stream: name a format")
            fmt = format or detect_format(str(name))
            stream = source
        if fmt not in ("jsonl", "csv"):
            raise ConnectorError(f"unknown import format {fmt!r}: use jsonl or csv")
        lines = _decoded_lines(stream)
        if fmt == "csv":
            # CSV headers are matched case-insensitively: spreadsheets capitalise them.
            text_column = text_column.strip().lower()
            records = _csv_records(lines, required=("id", text_column, "author_id"))
        else:
            records = _jsonl_records(lines)
        first_seen: dict[str, int] = {}
        try:
            for position, record in records:
                if isinstance(record, RejectedRecord):
                    yield position, record
                    continue
                try:
                    post = post_from_record(record, text_column=text_column)
                except MalformedPayload as exc:
                    yield position, RejectedRecord(position, str(exc), raw=record)
                    continue
                earlier = first_seen.setdefault(post.external_id, position)
                if earlier != position:
                    reason = f"duplicate id {post.external_id!r} (first on line {earlier})"
                    yield position, RejectedRecord(position, reason, raw=record)
                    continue
                yield position, post
        except (OSError, EOFError) as exc:  # a truncated .gz or a vanished file, found only while reading
            raise ConnectorError(f"cannot read the import file: {exc}") from exc
        except UnicodeDecodeError as exc:  # a stream the caller opened as text in the wrong encoding
            raise ConnectorError(f"the import file is not {exc.encoding} text: {exc.reason}") from exc


def parse(source: Source, format: Format | None = None, *, text_column: str = "text") -> FetchResult:
    """Read the whole of ``source`` into one result; prefer :func:`iter_records` for large files."""
    posts: list[NormalizedPost] = []
    rejected: list[RejectedRecord] = []
    for _, item in iter_records(source, format, text_column=text_column):
        if isinstance(item, RejectedRecord):
            rejected.append(item)
        else:
            posts.append(item)
    return FetchResult(posts=tuple(posts), cursor={}, rejected=tuple(rejected))


def post_from_record(record: Mapping[str, Any], *, text_column: str = "text") -> NormalizedPost:
    """Turn one decoded record into a post. Raises :class:`MalformedPayload` with the reason it cannot."""
    unstorable = _unstorable(record)
    if unstorable:
        # PostgreSQL stores NUL neither in text columns nor in jsonb, and a lone surrogate (from a "\\ud83d" escape
        # without its pair) has no UTF-8 form: such a record could never be saved.
        raise MalformedPayload(f"record contains {unstorable}")
    external_id = _string(record, "id", required=True)
    # Text is kept exactly as written: leading spaces and line breaks can matter to the reader.
    text = _string(record, text_column, required=True, strip=False, limit=MAX_TEXT_CHARS)
    nested = record.get("author")
    if nested is not None and not isinstance(nested, Mapping):
        raise MalformedPayload("'author' must be an object")
    author = _author(nested, nested=True) if nested is not None else _author(record, nested=False)
    url = _string(record, "url")
    # The inbox turns url into a link; only web links may, or an imported javascript: URL would run on click.
    if url and not url.lower().startswith(("https://", "http://")):
        raise MalformedPayload("'url' must start with http:// or https://")
    return NormalizedPost(
        external_id=external_id,
        author=author,
        text=text,
        created_at=_created_at(record.get("created_at")),
        in_reply_to_external_id=_string(record, "in_reply_to"),
        conversation_external_id=_string(record, "conversation"),
        is_direct=_boolean(record, "direct"),
        language=_string(record, "lang"),
        url=url,
        raw=dict(record),
    )


def _author(source: Mapping[str, Any], *, nested: bool) -> NormalizedAuthor:
    def key(name: str) -> str:
        return name if nested else f"author_{name}"

    def label(name: str) -> str:
        return f"author.{name}" if nested else f"author_{name}"

    def string(name: str, *, required: bool = False) -> str:
        return _string(
            source, key(name), required=required, label=label(name), limit=_MAX_LENGTHS[f"author_{name}"]
        )

    return NormalizedAuthor(
        external_id=string("id", required=True),
        handle=string("handle"),
        name=string("name"),
        followers=_count(source.get(key("followers")), label("followers")),
        verified=_boolean(source, key("verified"), label=label("verified")),
    )


def _string(
    record: Mapping[str, Any],
    key: str,
    *,
    required: bool = False,
    label: str | None = None,
    limit: int | None = None,
    strip: bool = True,
) -> str:
    """The text at ``key``; ``limit`` defaults to the width of the column the field is stored in."""
    label = label or key
    limit = limit if limit is not None else _MAX_LENGTHS.get(key)
    value = record.get(key)
    if isinstance(value, bool):
        raise MalformedPayload(f"{label!r} must be text, not {str(value).lower()}")
    if isinstance(value, int):
        value = str(value)  # numeric ids are common in JSON exports
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MalformedPayload(f"missing {label!r}")
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"{label!r} must be text")
    if strip:
        value = value.strip()
    if limit is not None and len(value) > limit:
        raise MalformedPayload(f"{label!r} is longer than {limit} characters")
    return value


def _count(value: Any, label: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        digits = value.strip()
        if not (digits.isascii() and digits.isdigit()):
            raise MalformedPayload(f"{label!r} must be a whole number written with 0-9, not {value[:40]!r}")
        if len(digits) > _MAX_NUMBER_DIGITS:
            raise MalformedPayload(f"{label!r} has {len(digits)} digits; at most {_MAX_FOLLOWERS} is allowed")
        value = int(digits)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_FOLLOWERS:
        raise MalformedPayload(f"{label!r} must be a whole number from 0 to {_MAX_FOLLOWERS}, not {value!r}")
    return value


def _boolean(record: Mapping[str, Any], key: str, *, label: str | None = None) -> bool:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise MalformedPayload(f"{label or key!r} must be true or false, not {value!r}")


def _created_at(value: Any) -> datetime:
    if value is None or value == "":
        raise MalformedPayload("missing 'created_at'")
    if isinstance(value, str) and _UNIX_SECONDS.match(value.strip()):
        if len(value.strip()) > _MAX_NUMBER_DIGITS:
            raise MalformedPayload(f"'created_at' {value[:40]!r}… is out of range for unix seconds")
        value = float(value)
    if isinstance(value, bool):
        raise MalformedPayload("'created_at' must be an ISO 8601 date or unix seconds")
    if isinstance(value, int | float):
        try:
            if not math.isfinite(value):
                raise MalformedPayload(f"'created_at' {value!r} is not a time")
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise MalformedPayload(
                f"'created_at' {value!r} is out of range for unix seconds (milliseconds, perhaps?)"
            ) from None
    if not isinstance(value, str):
        raise MalformedPayload("'created_at' must be an ISO 8601 date or unix seconds")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedPayload(
            f"'created_at' {value[:40]!r} is not an ISO 8601 date or unix seconds"
        ) from None
    offset = parsed.utcoffset()
    if offset is None:
        # Guessing a zone would silently shift every post by hours; the exporter knows which zone it meant.
        raise MalformedPayload(
            f"'created_at' {value[:40]!r} has no UTC offset: add 'Z' or an offset such as '+02:00'"
        )
    if abs(offset) > _MAX_OFFSET or offset % timedelta(minutes=1):
        raise MalformedPayload(f"'created_at' {value[:40]!r} has an offset no time zone uses")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise MalformedPayload(f"'created_at' {value[:40]!r} is out of range once converted to UTC") from None


def _unstorable(value: Any) -> str | None:
    """What in a decoded value PostgreSQL could not store, or None."""
    if isinstance(value, str):
        return unstorable(value)
    if isinstance(value, Mapping):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        found = _unstorable(item)
        if found:
            return found
    return None


def _decoded_lines(stream: Iterable[str | bytes]) -> Iterator[tuple[int, str, bool]]:
    """Yield ``(line number, text, decoded cleanly)``. A line that is not UTF-8 comes with replacement
    characters so the CSV reader keeps its place, and its record is rejected."""
    for number, line in enumerate(stream, start=1):
        ok = True
        if isinstance(line, bytes):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                text, ok = line.decode("utf-8", errors="replace"), False
        else:
            text = line
        if number == 1:
            text = text.removeprefix("\ufeff")  # spreadsheet exports start with a byte order mark
        yield number, text, ok


class _UnstorableNumber(ValueError):
    """A JSON number PostgreSQL's jsonb cannot hold (NaN, ±Infinity) or too long to be a real value."""


def _refuse_constant(name: str) -> Any:
    raise _UnstorableNumber(f"{name} is not a number JSON allows (PostgreSQL cannot store it)")


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_NUMBER_DIGITS:
        raise _UnstorableNumber(f"a number with {len(digits.lstrip('-'))} digits (at most {_MAX_NUMBER_DIGITS})")
    return int(digits)


def _parse_float(text: str) -> float:
    if len(text) > _MAX_NUMBER_DIGITS + 10:
        raise _UnstorableNumber(f"a number written with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _UnstorableNumber(f"{text} is too large to store")
    return value


def _jsonl_records(
    lines: Iterable[tuple[int, str, bool]],
) -> Iterator[tuple[int, Mapping[str, Any] | RejectedRecord]]:
    for number, text, ok in lines:
        if not text.strip():
            continue
        if not ok:
            yield number, RejectedRecord(number, "line is not valid UTF-8", raw=text)
            continue
        try:
            record = json.loads(
                text, parse_constant=_refuse_constant, parse_int=_parse_int, parse_float=_parse_float
            )
        except json.JSONDecodeError as exc:
            yield number, RejectedRecord(number, f"invalid JSON: {exc.msg} (column {exc.colno})", raw=text)
            continue
        except _UnstorableNumber as exc:
            yield number, RejectedRecord(number, str(exc), raw=text)
            continue
        except RecursionError:
            yield number, RejectedRecord(number, "invalid JSON: nested too deeply", raw=text)
            continue
        if not isinstance(record, dict):
            yield number, RejectedRecord(number, f"expected a JSON object, got {type(record).__name__}", raw=text)
            continue
        yield number, record


class _RecordTooLong(Exception):
    pass


def _csv_records(
    lines: Iterable[tuple[int, str, bool]], *, required: Iterable[str]
) -> Iterator[tuple[int, Mapping[str, Any] | RejectedRecord]]:
    """CSV rows with the line each starts on. Each record gets a fresh reader over the lines it takes, so that a
    record that cannot end (a quote opened and never closed) is rejected alone and the lines after its first
    are read again, instead of being swallowed into one field up to the end of the file."""
    source = iter(lines)
    pending: deque[tuple[int, str, bool]] = deque()
    header: list[str] | None = None

    def feed(taken: list[tuple[int, str, bool]]) -> Iterator[str]:
        size = 0
        while True:
            item = pending.popleft() if pending else next(source, None)
            if item is None:
                return
            taken.append(item)
            size += len(item[1])
            if size > MAX_RECORD_CHARS:
                raise _RecordTooLong
            yield item[1]

    while True:
        taken: list[tuple[int, str, bool]] = []
        try:
            row = next(csv.reader(feed(taken), strict=True))
        except StopIteration:
            return
        except (csv.Error, _RecordTooLong) as exc:
            if not taken:
                return
            start = taken[0][0]
            if header is None:
                raise ConnectorError(f"cannot read the CSV header: {exc}") from exc
            # A record that ran over several lines and then broke (at the end of the file, or at a quote that
            # closed where no field ends) began with a quote that never closed.
            if len(taken) > 1:
                yield start, RejectedRecord(
                    start, f"a quote opened on line {start} is never closed; the lines after it are read on their own",
                    raw=taken[0][1],
                )
                pending.extendleft(reversed(taken[1:]))
            else:
                yield start, RejectedRecord(start, f"unreadable CSV: {exc}", raw=taken[0][1])
            continue
        start = taken[0][0] if taken else 0
        bad = any(not ok for _, _, ok in taken)
        if not row or not any(cell.strip() for cell in row):
            continue
        if header is None:
            if bad:
                raise ConnectorError("the CSV header is not valid UTF-8")
            header = _csv_header(row, required)
            continue
        if bad:
            yield start, RejectedRecord(start, "line is not valid UTF-8", raw="".join(t for _, t, _ in taken))
            continue
        if len(row) > len(header):
            reason = f"row has {len(row)} fields but the header has {len(header)}"
            yield start, RejectedRecord(start, reason, raw="".join(t for _, t, _ in taken))
            continue
        # Trailing empty columns are often dropped by exporters, so a short row is read as blanks.
        yield start, dict(zip(header, row, strict=False))


def _csv_header(row: list[str], required: Iterable[str]) -> list[str]:
    # Every row would be rejected for the same reason, so a header that cannot work refuses the file at once.
    header = [cell.strip().lower() for cell in row]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ConnectorError(f"the CSV header repeats {', '.join(duplicates)}")
    missing = [name for name in required if name not in header]
    if missing:
        raise ConnectorError(f"the CSV header lacks {', '.join(missing)} (it has: {', '.join(header)})")
    return header
