"""Ingest never crashes on one record: every record-level fault is a rejection with its line and reason, and every
other record of the file is stored exactly once."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from caredesk.cases.models import Post
from caredesk.connectors.builtin.file.parser import MAX_TEXT_CHARS, iter_records
from caredesk.ingest.importer import import_file

pytestmark = pytest.mark.django_db

GOOD = {"text": "my router keeps dropping", "created_at": "2026-11-20T10:00:00Z", "author_id": "u1"}


def _jsonl(*lines: str) -> list[tuple[int, object]]:
    return list(iter_records(io.StringIO("\n".join(lines) + "\n"), "jsonl"))


def _reasons(records: list[tuple[int, object]]) -> dict[int, str]:
    return {line: getattr(item, "reason", "") for line, item in records if hasattr(item, "reason")}


def _record(external_id: str, **fields: object) -> str:
    return json.dumps({"id": external_id, **GOOD, **fields})


HOSTILE_JSON = {
    "NaN in raw": _record("a").replace('"u1"', '"u1", "extra": NaN'),
    "Infinity nested": _record("b").replace('"u1"', '"u1", "x": {"y": [1, -Infinity]}'),
    "NaN followers": _record("c").replace('"u1"', '"u1", "author_followers": NaN'),
    "huge integer": _record("d").replace('"u1"', '"u1", "extra": ' + "9" * 5000),
    "huge followers": _record("e").replace('"u1"', '"u1", "author_followers": ' + "9" * 5000),
    "huge float": _record("f").replace('"u1"', '"u1", "score": 1e400'),
    "year 1 with an offset": _record("g", created_at="0001-01-01T00:00:00+05:00"),
    "year 9999 with an offset": _record("h", created_at="9999-12-31T23:59:59-05:00"),
    "an offset no zone uses": _record("i", created_at="2026-11-20T10:00:00+23:59"),
    "seconds in the offset": _record("j", created_at="2026-11-20T10:00:00+01:00:30"),
    "huge unix seconds": _record("k").replace('"2026-11-20T10:00:00Z"', "9" * 400),
    "superscript digits": _record("l", author_followers="²"),
    "Arabic-Indic digits": _record("m", author_followers="٣٤"),
    "NUL": _record("n", text="nul \u0000 here"),
    "lone surrogate": _record("o").replace("my router", "my \\ud83d router"),
    "text too long": _record("p", text="x" * (MAX_TEXT_CHARS + 1)),
}
EXPECTED = {
    "NaN in raw": "NaN is not a number JSON allows",
    "Infinity nested": "-Infinity is not a number JSON allows",
    "NaN followers": "NaN is not a number JSON allows",
    "huge integer": "a number with 5000 digits",
    "huge followers": "a number with 5000 digits",
    "huge float": "1e400 is too large to store",
    "year 1 with an offset": "out of range once converted to UTC",
    "year 9999 with an offset": "out of range once converted to UTC",
    "an offset no zone uses": "an offset no time zone uses",
    "seconds in the offset": "an offset no time zone uses",
    "huge unix seconds": "a number with 400 digits",
    "superscript digits": "written with 0-9",
    "Arabic-Indic digits": "written with 0-9",
    "NUL": "a NUL character",
    "lone surrogate": "lone UTF-16 surrogate",
    "text too long": f"longer than {MAX_TEXT_CHARS} characters",
}


@pytest.mark.parametrize("fault", list(HOSTILE_JSON))
def test_each_hostile_json_record_is_rejected_alone(fault: str) -> None:
    records = _jsonl(_record("before"), HOSTILE_JSON[fault], _record("after"))
    assert _reasons(records).keys() == {2}, _reasons(records)
    assert EXPECTED[fault] in _reasons(records)[2]
    assert [item.external_id for _, item in records if not hasattr(item, "reason")] == ["before", "after"]


def test_an_unterminated_csv_quote_is_reported_and_the_rows_after_it_kept() -> None:
    text = ('id,text,author_id,created_at\n'
            '1,fine,u1,2026-11-20T10:00:00Z\n'
            '2,"never closed,u2,2026-11-20T10:00:00Z\n'
            '3,also fine,u3,2026-11-20T10:00:00Z\n'
            '4,"a quoted\nline break",u4,2026-11-20T10:00:00Z\n')
    records = list(iter_records(io.StringIO(text), "csv"))
    assert _reasons(records) == {
        3: "a quote opened on line 3 is never closed; the lines after it are read on their own"
    }
    kept = {item.external_id: item.text for _, item in records if not hasattr(item, "reason")}
    assert kept == {"1": "fine", "3": "also fine", "4": "a quoted\nline break"}


def test_csv_and_jsonl_accept_the_same_text_lengths() -> None:
    longest = "y" * MAX_TEXT_CHARS
    for text, accepted in ((longest, True), (longest + "y", False)):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "text", "author_id", "created_at"])
        writer.writerow(["1", text, "u1", "2026-11-20T10:00:00Z"])
        from_csv = list(iter_records(io.StringIO(out.getvalue()), "csv"))
        from_jsonl = _jsonl(_record("1", text=text))
        for records in (from_csv, from_jsonl):
            assert (not _reasons(records)) is accepted


def _generated(path: Path, n: int, seed: int) -> set[str]:
    """A file of ``n`` records, about a third of them hostile; returns the ids of the valid ones."""
    rng = random.Random(seed)
    faults = list(HOSTILE_JSON.values())
    valid: set[str] = set()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            roll = rng.random()
            if roll < 0.3:
                line = faults[i % len(faults)].replace('"id": "', f'"id": "bad{i}-', 1)
            elif roll < 0.33:
                line = "{not json at all " + "é" * (i % 5)
            elif roll < 0.35:
                line = json.dumps({"id": f"ok{i}", "text": "no author"})
            else:
                external_id = f"ok{i}"
                line = _record(external_id, author_id=f"u{i % 400}", text=f"post {i}: {'billing ' * (i % 7)}help")
                valid.add(external_id)
            fh.write(line + "\n")
    return valid


def test_a_generated_file_of_10000_mixed_records_stores_every_valid_one_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    valid = _generated(path, 10_000, seed=8)
    out, err = io.StringIO(), io.StringIO()
    code = import_file(path, brand_slug="acme", file_format=None, batch_size=500, platform="x", progress=False,
                       out=out, err=err, rejects=rejects)
    assert code == 1  # some rejected, the rest stored
    stored = list(Post.objects.values_list("external_id", flat=True))
    assert len(stored) == len(set(stored)) == len(valid)
    assert set(stored) == valid
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(written) == 10_000 - len(valid)
    assert all(r["reason"] and r["line"] >= 1 and r["record"] is not None for r in written)
    # Once more: nothing new is stored, nothing is lost.
    assert import_file(path, brand_slug="acme", file_format=None, batch_size=500, platform="x", progress=False,
                       out=io.StringIO(), err=io.StringIO()) == 1
    assert Post.objects.count() == len(valid)


def test_exit_codes_tell_all_stored_some_rejected_and_could_not_run(tmp_path: Path) -> None:
    good, mixed = tmp_path / "good.jsonl", tmp_path / "mixed.jsonl"
    good.write_text(_record("g1") + "\n")
    mixed.write_text(_record("m1") + "\n" + HOSTILE_JSON["NaN in raw"] + "\n")
    kwargs = {"brand_slug": "acme", "file_format": None, "batch_size": 10, "platform": "x", "progress": False,
              "out": io.StringIO(), "err": io.StringIO()}
    assert import_file(good, **kwargs) == 0
    assert import_file(good, **kwargs) == 0  # already known counts as stored
    assert import_file(mixed, **kwargs) == 1
    assert import_file(tmp_path / "missing.jsonl", **kwargs) == 2
    assert import_file(tmp_path / "good.txt", **{**kwargs, "file_format": None}) == 2
