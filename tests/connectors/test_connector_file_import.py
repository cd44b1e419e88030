"""File import: fixture files in, expected posts and rejections out."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from caredesk.connectors.base import (
    Capability,
    ConnectorError,
    NormalizedAuthor,
    NormalizedPost,
    RejectedRecord,
)
from caredesk.connectors.builtin.file import FileConfig, FileProvider, detect_format, iter_records, parse
from caredesk.connectors.registry import get_provider_class

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "connectors" / "file_import"


def reasons(rejected: Sequence[RejectedRecord]) -> dict[int, str]:
    return {r.position: r.reason for r in rejected}


def test_registered_under_its_key_as_an_import_only_provider() -> None:
    assert get_provider_class("file") is FileProvider
    assert FileProvider.capabilities == {Capability.IMPORT}
    p = FileProvider(FileConfig(platform="mastodon"), {})
    assert p.platform == "mastodon"
    with pytest.raises(ConnectorError, match="cannot be polled"):
        p.fetch({}, datetime(2024, 1, 1, tzinfo=UTC))


def test_jsonl_fixture_gives_the_expected_posts() -> None:
    result = parse(FIXTURES / "posts.jsonl")
    assert result.rejected == ()
    customer = NormalizedAuthor(external_id="u501", handle="evening_drops", name="Iris Cole", followers=310)
    assert result.posts[0] == NormalizedPost(
        external_id="1790001",
        author=customer,
        text="@NimbusCare my internet drops every evening around 8pm",
        created_at=datetime(2024, 3, 5, 20, 14, 3, tzinfo=UTC),
        language="en",
        url="https://x.example/evening_drops/status/1790001",
        raw=result.posts[0].raw,
    )
    brand_reply = result.posts[1]
    assert brand_reply.author == NormalizedAuthor(
        external_id="brand-nimbus", handle="NimbusCare", name="Nimbus Care", followers=88000, verified=True
    )
    assert brand_reply.created_at == datetime(2024, 3, 5, 20, 0, tzinfo=UTC)  # 21:00 at +01:00
    assert brand_reply.created_at.tzinfo is UTC
    assert (brand_reply.in_reply_to_external_id, brand_reply.conversation_external_id) == (
        "1790001",
        "1790001",
    )
    dm = result.posts[2]
    assert dm.external_id == "1790003"  # a numeric JSON id becomes text
    assert dm.created_at == datetime(2024, 3, 5, 21, 0, tzinfo=UTC)  # unix seconds
    assert dm.is_direct and dm.in_reply_to_external_id == "1790002"
    assert dm.author == NormalizedAuthor(external_id="u501", handle="evening_drops")
    assert dm.raw["extra"] == {"source": "archive"}  # unknown fields are kept for later


def test_csv_fixture_gives_the_expected_posts() -> None:
    result = parse(FIXTURES / "posts.csv")
    assert result.rejected == ()
    first, second = result.posts
    assert first == NormalizedPost(
        external_id="2001",
        author=NormalizedAuthor(external_id="u77", handle="gate_c4", name="Omar B", followers=1200),
        text='@AeroLarkHelp my flight AL 9 was cancelled, "rebooked" onto one 2 days later??',
        created_at=datetime(2024, 6, 1, 8, 30, tzinfo=UTC),
        language="en",
        url="https://x.example/gate_c4/status/2001",
        raw=first.raw,
    )
    assert second.text == "Line one\nline two of the same post"
    assert second.created_at == datetime(2024, 6, 1, 8, 45, 0, 500000, tzinfo=UTC)
    assert second.is_direct and second.in_reply_to_external_id == "2001"
    assert second.author == NormalizedAuthor(external_id="u78", handle="two_lines")


def test_malformed_jsonl_lines_are_rejected_with_line_and_reason_and_the_rest_kept() -> None:
    positions = [position for position, _ in iter_records(FIXTURES / "malformed.jsonl")]
    result = parse(FIXTURES / "malformed.jsonl")
    assert [p.external_id for p in result.posts] == ["ok-1", "ok-2"]
    assert [p.text for p in result.posts] == ["first good one", "second good one"]
    rejected = reasons(result.rejected)
    assert sorted(rejected) == list(range(2, 12))
    assert rejected[2].startswith("invalid JSON")
    assert rejected[3] == "expected a JSON object, got list"
    assert rejected[4] == "missing 'id'"
    assert rejected[5] == "missing 'text'"
    assert rejected[6] == "missing 'author_id'"
    assert "has no UTC offset" in rejected[7]
    assert "not an ISO 8601 date" in rejected[8]
    assert "milliseconds" in rejected[9]
    assert rejected[10] == "duplicate id 'ok-1' (first on line 1)"
    assert rejected[11] == "line is not valid UTF-8"
    assert positions == list(range(1, 13))


def test_malformed_csv_rows_are_rejected_with_line_and_reason_and_the_rest_kept() -> None:
    result = FileProvider(FileConfig(), {}).parse(FIXTURES / "malformed.csv")
    assert [p.external_id for p in result.posts] == ["c1", "c7"]
    assert result.posts[1].text == "good row with a, comma"
    assert result.posts[1].author.followers == 0
    assert reasons(result.rejected) == {
        3: "missing 'text'",
        4: "row has 7 fields but the header has 6",
        5: "'author_followers' must be a whole number written with 0-9, not 'lots'",
        6: "'direct' must be true or false, not 'maybe'",
        7: "missing 'created_at'",
    }


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        ("2024-01-01T12:00:00Z", datetime(2024, 1, 1, 12, tzinfo=UTC)),
        ("2024-01-01T12:00:00.250+00:00", datetime(2024, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2024-01-01T14:00:00+02:00", datetime(2024, 1, 1, 12, tzinfo=UTC)),
        ("1704110400", datetime(2024, 1, 1, 12, tzinfo=UTC)),
        (1704110400.25, datetime(2024, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_created_at_is_read_as_utc(created_at: object, expected: datetime) -> None:
    line = f'{{"id": "1", "text": "t", "author_id": "a", "created_at": {created_at!r}}}'.replace("'", '"')
    (post,) = parse(io.StringIO(line + "\n"), "jsonl").posts
    assert post.created_at == expected and post.created_at.tzinfo is UTC


@pytest.mark.parametrize("created_at", ['"2024-01-01"', '"2024-01-01 12:00"', "true", '"NaN"', "1e300", "{}"])
def test_dates_without_a_zone_or_that_are_not_dates_are_rejected(created_at: str) -> None:
    line = f'{{"id": "1", "text": "t", "author_id": "a", "created_at": {created_at}}}\n'
    result = parse(io.StringIO(line), "jsonl")
    assert result.posts == () and len(result.rejected) == 1
    assert "created_at" in result.rejected[0].reason


def test_values_that_would_not_fit_or_could_not_be_stored_are_rejected() -> None:
    base = '"text": "t", "author_id": "a", "created_at": "2024-01-01T00:00:00Z"'
    lines = [
        f'{{"id": "{"9" * 201}", {base}}}',
        f'{{"id": "2", {base}, "lang": "en-GB-oxendict-x"}}',
        f'{{"id": "3", {base}, "url": "javascript:alert(1)"}}',
        '{"id": "4", "text": "nul \\u0000 byte", "author_id": "a", "created_at": "2024-01-01T00:00:00Z"}',
        f'{{"id": "5", {base}, "author_followers": -3}}',
        f'{{"id": "6", {base}, "author": "someone"}}',
        f'{{"id": "7", {base}, "direct": true, "url": "https://x.example/7"}}',
        '{"id": "8", "text": "half an emoji \\ud83d", "author_id": "a", "created_at": "2024-01-01T00:00:00Z"}',
        f'{{"id": "9", {base}, "extra": {{"note": "\\udfff"}}}}',
    ]
    result = parse(io.StringIO("\n".join(lines)), "jsonl")
    assert [p.external_id for p in result.posts] == ["7"]
    assert reasons(result.rejected) == {
        1: "'id' is longer than 200 characters",
        2: "'lang' is longer than 12 characters",
        3: "'url' must start with http:// or https://",
        4: "record contains a NUL character",
        5: "'author_followers' must be a whole number from 0 to 2147483647, not -3",
        6: "'author' must be an object",
        8: "record contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)",
        9: "record contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)",
    }


def test_attacker_controlled_text_is_kept_verbatim_for_the_inbox_to_escape() -> None:
    line = '{"id": "x", "text": "<img src=x onerror=alert(1)>", "author_id": "a", "created_at": 0}\n'
    (post,) = parse(io.StringIO(line), "jsonl").posts
    assert post.text == "<img src=x onerror=alert(1)>"


def test_format_comes_from_the_name_or_is_given() -> None:
    assert detect_format("export.JSONL") == "jsonl"
    assert detect_format("export.ndjson") == "jsonl"
    assert detect_format("exports/export.csv.gz") == "csv"
    for name in ("export.json", "export", "export.gz"):
        with pytest.raises(ConnectorError, match="cannot tell the format"):
            detect_format(name)
    with pytest.raises(ConnectorError, match="unnamed stream"):
        list(iter_records(io.StringIO("")))
    with pytest.raises(ConnectorError, match="unknown import format"):
        list(iter_records(io.StringIO(""), "xml"))  # type: ignore[arg-type]


def test_gzip_files_binary_uploads_and_byte_order_marks_are_read(tmp_path: Path) -> None:
    data = (FIXTURES / "posts.csv").read_bytes()
    packed = tmp_path / "export.csv.gz"
    packed.write_bytes(gzip.compress(data))
    upload = io.BytesIO(
        b"\xef\xbb\xbf" + data
    )  # as a spreadsheet saves it, and as Django hands an upload over
    upload.name = "export.csv"
    plain = parse(FIXTURES / "posts.csv")
    assert parse(packed).posts == plain.posts
    assert parse(upload).posts == plain.posts
    wrong_name = tmp_path / "posts.txt"
    wrong_name.write_bytes((FIXTURES / "posts.jsonl").read_bytes())
    assert len(parse(wrong_name, "jsonl").posts) == 3


def test_a_csv_header_that_cannot_work_refuses_the_file() -> None:
    with pytest.raises(ConnectorError, match="lacks author_id"):
        parse(io.StringIO("id,text\n1,hello\n"), "csv")
    with pytest.raises(ConnectorError, match="repeats text"):
        parse(io.StringIO("id,text,Text,author_id\n"), "csv")


def test_the_text_column_is_configurable() -> None:
    data = "id,Body,author_id,created_at\n1,hello there,a,2024-01-01T00:00:00Z\n"
    provider = FileProvider(FileConfig(text_column="body"), {})  # CSV headers match whatever their case
    (post,) = provider.parse(io.StringIO(data), "csv").posts
    assert post.text == "hello there"
    jsonl = '{"id": "1", "message": "from jsonl", "author_id": "a", "created_at": 0}\n'
    (post,) = FileProvider(FileConfig(text_column="message"), {}).parse(io.StringIO(jsonl), "jsonl").posts
    assert post.text == "from jsonl"


def test_records_stream_without_reading_the_whole_file() -> None:
    read = 0

    def lines() -> Iterator[str]:
        nonlocal read
        for n in range(100_000):
            read += 1
            yield f'{{"id": "{n}", "text": "post {n}", "author_id": "a", "created_at": {n}}}\n'

    records = iter_records(lines(), "jsonl")
    first = [next(records) for _ in range(3)]
    assert [item.external_id for _, item in first if isinstance(item, NormalizedPost)] == ["0", "1", "2"]
    assert read < 10


def test_a_file_that_cannot_be_read_stops_the_import_with_a_clear_error(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"id": "1", "text": "café"}\n'.encode("latin-1"))
    with latin1.open(encoding="utf-8") as stream, pytest.raises(ConnectorError, match="not utf-8 text"):
        list(iter_records(stream))
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress((FIXTURES / "posts.jsonl").read_bytes())[:-20])
    with pytest.raises(ConnectorError, match="cannot read the import file"):
        list(iter_records(truncated))
    with pytest.raises(ConnectorError, match="cannot open 'absent.csv'"):
        list(iter_records(tmp_path / "absent.csv"))
